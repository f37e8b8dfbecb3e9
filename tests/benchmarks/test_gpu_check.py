"""The prepared GPU check: its plan per machine, the stage probe, the summary table, the CPU dry run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_check import Stage, markdown_table, plan, table_rows  # noqa: E402
from stage_probe import StageProbe, batch_images  # noqa: E402


def _stage(stages: list[Stage], prefix: str) -> Stage:
    return next(s for s in stages if s.name.startswith(prefix))


@pytest.mark.parametrize("gpus, devices, preset", [(2, 2, "ddp"), (1, 1, "gpu")])
def test_gpu_plan_runs_every_stage_in_bf16_with_ddp_when_two_gpus_exist(
    tmp_path: Path, gpus: int, devices: int, preset: str
) -> None:
    stages = plan(tmp_path, cpu=False, gpus=gpus)
    assert [s.name.split(" ")[0] for s in stages] == [
        "adapt",
        "annotate",
        "pretrain",
        "evaluate",
        "pretrain",
        "pretrain",
    ]
    pretrain = _stage(stages, "pretrain (").argv
    assert f"configs/trainer/{preset}.yaml" in pretrain and f"--trainer.devices={devices}" in pretrain
    for stage in stages[:3]:
        assert (
            "--trainer.precision=bf16-mixed" in stage.argv
            and "--trainer.accelerator=gpu" in stage.argv
            and stage.probe is not None
        )
    bench = _stage(stages, "pretrain benchmark").argv
    assert {"--batch=64", "--image-size=224", "--device=cuda"} <= set(bench)
    assert "--compile" in stages[-1].argv
    evaluate = json.loads(json.dumps(__import__("yaml").safe_load((tmp_path / "evaluate.yaml").read_text())))
    assert evaluate["precision"] == "bf16-mixed" and evaluate["accelerator"] == "gpu" and len(evaluate["tasks"]) == 2


def test_cpu_dry_plan_is_tiny_and_installs_nothing(tmp_path: Path) -> None:
    stages = plan(tmp_path, cpu=True, gpus=0)
    assert all("--trainer.accelerator=gpu" not in s.argv and "--compile" not in s.argv for s in stages)
    assert "--trainer.devices=1" in _stage(stages, "pretrain (").argv
    assert {"--device=cpu", "--batch=2", "--image-size=64"} <= set(_stage(stages, "pretrain benchmark").argv)


@pytest.mark.parametrize("args, make_calls", [(["--cpu"], ""), ([], "install data\n")])
def test_script_installs_with_make_only_on_the_device(tmp_path: Path, args: list[str], make_calls: str) -> None:
    for name, body in (("make", f'echo "$@" >> {tmp_path}/make.log'), ("python", f'echo "$@" > {tmp_path}/python.log')):
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "PYTHON": str(tmp_path / "python")}
    subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *args], check=True, env=env)
    assert ((tmp_path / "make.log").read_text() if (tmp_path / "make.log").exists() else "") == make_calls
    assert (tmp_path / "python.log").read_text().split() == ["benchmarks/gpu_check.py", *args]


class _Tiny(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).square().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_stage_probe_times_all_but_the_first_batch_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    data = DataLoader(TensorDataset(torch.randn(20, 3)), batch_size=4)
    Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StageProbe(str(out))],
    ).fit(_Tiny(), data)
    result = json.loads(out.read_text())
    assert result["batches"] == 5 and result["timed_batches"] == 4 and result["world_size"] == 1
    assert (
        result["images_per_s"] > 0
        and result["peak_memory_mib"] > 0
        and result["peak_memory_kind"] == "process peak RSS"
    )
    assert batch_images({"view1": torch.zeros(6, 1, 2, 2), "n": 3}) == 6 and batch_images([torch.zeros(2)]) == 2


def test_summary_table_has_a_row_per_stage_and_per_benchmark_precision(tmp_path: Path) -> None:
    stages = plan(tmp_path, cpu=True, gpus=0)
    stages[0].result = {
        "status": "ok",
        "seconds": 12.0,
        "measured": {"images_per_s": 40.5, "peak_memory_mib": 900.0, "peak_memory_kind": "process peak RSS"},
    }
    stages[1].result = {"status": "failed (exit 1)", "seconds": 3.0}
    ours = {"images_per_s": 2.5, "peak_memory_mib": 2000.0, "peak_memory_kind": "process peak RSS"}
    stages[-1].result = {
        "status": "ok",
        "seconds": 30.0,
        "measured": {
            "results": {
                "fp32": {"ours": ours, "fraction_of_floor": 0.8},
                "bf16": {"ours": ours, "fraction_of_floor": 0.9},
                "scales": [],
            }
        },
    }
    rows = table_rows(stages)
    assert rows[0] == ["adapt", "ok", "12", "40.5", "900 MiB (process peak RSS)", "-"]
    assert rows[1][:4] == ["annotate", "failed (exit 1)", "3", "-"] and rows[2][1] == "not run"
    assert [r[0] for r in rows[-2:]] == ["pretrain benchmark fp32", "pretrain benchmark bf16"] and rows[-1][
        -1
    ] == "0.90"
    assert markdown_table(rows).count("\n") == len(rows) + 1


@pytest.mark.slow
def test_cpu_dry_run_of_the_benchmark_stage_fills_the_table(tmp_path: Path) -> None:
    """The driver end to end on the stage that needs no earlier one (the whole dry run takes ~25 min on 2 busy cores)."""
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--cpu", "--out", str(tmp_path), "--only", "pretrain benchmark"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)},
    )
    log = (tmp_path / "gpu_check.log").read_text() if (tmp_path / "gpu_check.log").exists() else ""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + log[-3000:]
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("CPU dry run") and summary.count("| ok |") == 2
    assert "| pretrain benchmark fp32 | ok |" in summary and "| pretrain benchmark bf16 | ok |" in summary
