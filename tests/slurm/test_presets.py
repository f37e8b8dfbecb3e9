"""Trainer presets parse with AnausCLI on top of a stage YAML and give the Trainer they promise."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.strategies import DDPStrategy
from standin_stage import StandInData, StandInModule

from anaus_pl.lightning_cli import AnausCLI
from anaus_pl.requeue import RequeueAtStepBoundary, SLURMStepRequeue

ROOT = Path(__file__).resolve().parents[2]
STAND_IN = str(ROOT / "tests/slurm/standin.yaml")


def _preset(name: str) -> str:
    return str(ROOT / "configs/trainer" / f"{name}.yaml")


class ParseOnlyCLI(AnausCLI):
    """Parses and validates the config without building the Trainer (GPU presets on a CPU machine)."""

    def instantiate_classes(self) -> None:
        pass


@pytest.mark.parametrize(
    ("presets", "expected"),
    [
        (
            ["cpu"],
            {"accelerator": "cpu", "devices": 1, "strategy": "auto", "precision": "32-true", "sync_batchnorm": False},
        ),
        (
            ["gpu"],
            {
                "accelerator": "gpu",
                "devices": 1,
                "strategy": "auto",
                "precision": "bf16-mixed",
                "sync_batchnorm": False,
            },
        ),
        (
            ["ddp"],
            {"accelerator": "gpu", "devices": -1, "strategy": "ddp", "precision": "bf16-mixed", "sync_batchnorm": True},
        ),
        (
            ["ddp", "slurm"],
            {"accelerator": "gpu", "devices": 1, "strategy": "ddp", "precision": "bf16-mixed", "sync_batchnorm": True},
        ),
    ],
)
def test_presets_parse_after_a_stage_config(presets: list[str], expected: dict) -> None:
    args = ["--config", STAND_IN] + [arg for name in presets for arg in ("--config", _preset(name))]
    trainer = ParseOnlyCLI(args=args + ["--model.out_dir", "unused"], run=False).config.trainer
    assert {key: trainer[key] for key in expected} == expected


def test_slurm_preset_builds_a_requeueing_slurm_trainer(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for key, value in {
        "SLURM_JOB_ID": "7",
        "SLURM_JOB_NAME": "anaus-pretrain",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NODELIST": "localhost",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    }.items():
        monkeypatch.setenv(key, value)
    args = [
        "--config",
        STAND_IN,
        "--config",
        _preset("cpu"),
        "--config",
        _preset("slurm"),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--model.out_dir",
        str(tmp_path),
    ]
    trainer = AnausCLI(args=args, run=False).trainer
    environment = trainer._accelerator_connector.cluster_environment
    assert isinstance(environment, SLURMStepRequeue) and isinstance(environment, SLURMEnvironment)
    # the requeue runs between batches (the callback), not inside Lightning's signal handler
    assert not environment.auto_requeue and environment.requeue_signal == signal.SIGUSR1
    assert [type(c) for c in trainer.callbacks].count(RequeueAtStepBoundary) == 1
    assert isinstance(trainer.strategy, DDPStrategy)


class _SignalAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGUSR1)


def test_requeue_signal_saves_at_the_batch_end_and_requeues(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """SIGUSR1 during step 3: hpc_ckpt_1.ckpt holds global step 4 and `scontrol requeue <job>` ran once."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/scontrol").write_text(f'#!/bin/bash\necho "$@" >> {tmp_path}/scontrol.calls\n')
    (tmp_path / "bin/scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(b"")  # an earlier requeue's checkpoint: the next one is _2
    module, data = StandInModule(out_dir=str(tmp_path)), StandInData(num_samples=64)
    trainer = Trainer(
        max_steps=6,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        callbacks=[RequeueAtStepBoundary(), _SignalAtStep(3)],
    )
    previous = signal.getsignal(signal.SIGUSR1)
    trainer.fit(module, data)
    assert signal.getsignal(signal.SIGUSR1) == previous  # the handler is restored after the run
    assert (tmp_path / "scontrol.calls").read_text().split("\n")[:-1] == ["requeue 7"]
    checkpoint = torch.load(tmp_path / "hpc_ckpt_2.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 4 and trainer.global_step == 6


def test_stand_in_fits_with_bf16_autocast_on_cpu(tmp_path) -> None:
    args = [
        "fit",
        "--config",
        STAND_IN,
        "--config",
        _preset("cpu"),
        "--trainer.precision",
        "bf16-mixed",
        "--trainer.max_steps",
        "3",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--model.out_dir",
        str(tmp_path),
    ]
    cli = AnausCLI(args=args)
    assert cli.trainer.precision == "bf16-mixed"
    assert json.loads((tmp_path / "result.json").read_text())["global_step"] == 3
