"""Checkpoints are read without running code from them; bad files fail naming the file, the stage and the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from anaus_pl.checkpoints import CheckpointError, check_checkpoint, load_checkpoint
from anaus_pl.cli import main
from anaus_pl.data.corruption import CorruptionConfig
from anaus_pl.tasks.stage_checkpoints import load_stage_checkpoint

SRC = Path(__file__).resolve().parents[1] / "src"


class RunsCode:
    """Unpickling this object creates the file ``marker`` (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pretrain_like(path: Path, **extra) -> Path:
    """A checkpoint with the keys (and a config dataclass) of a pretrain-stage checkpoint."""
    torch.save(
        {
            "state_dict": {"w": torch.ones(2)},
            "epoch": 3,
            "encoder_meta": {"arch": "resnet18"},
            "hyper_parameters": {"arch": "resnet18", "corruption": CorruptionConfig(), "mean": (0.5, 0.5, 0.5)},
            **extra,
        },
        path,
    )
    return path


def test_a_crafted_checkpoint_does_not_run_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = pretrain_like(tmp_path / "evil.ckpt", payload=RunsCode(marker))
    with pytest.raises(CheckpointError, match=r"evil\.ckpt: holds a Python object \(posix\.system\)") as caught:
        load_stage_checkpoint(evil, "pretrain")
    assert not marker.exists() and "weights_only" not in str(caught.value)


@pytest.mark.parametrize("command", [["export", "--ckpt", "{ckpt}", "--out", "{out}"]])
def test_export_of_a_crafted_checkpoint_does_not_run_code_and_says_so_in_one_line(tmp_path, command):
    marker = tmp_path / "pwned"
    evil = pretrain_like(tmp_path / "evil.ckpt", payload=RunsCode(marker))
    argv = [part.format(ckpt=evil, out=tmp_path / "out") for part in command]
    result = subprocess.run(
        [sys.executable, "-m", "anaus_pl.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(SRC), "ANAUS_DEBUG": ""},
    )
    assert result.returncode == 1 and not marker.exists() and not (tmp_path / "out").exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "evil.ckpt: holds a Python object" in lines[0] and "Traceback" not in result.stderr


def test_config_dataclasses_and_plain_types_load(tmp_path):
    checkpoint = load_stage_checkpoint(pretrain_like(tmp_path / "ok.ckpt"), "pretrain")
    assert checkpoint["hyper_parameters"]["corruption"] == CorruptionConfig() and checkpoint["epoch"] == 3
    assert torch.equal(checkpoint["state_dict"]["w"], torch.ones(2))


def test_config_dataclasses_load_only_where_the_reader_names_them(tmp_path):
    path = pretrain_like(tmp_path / "ok.ckpt")
    with pytest.raises(
        CheckpointError, match=r"holds a Python object \(anaus_pl\.data\.corruption\.CorruptionConfig\)"
    ):
        load_checkpoint(path, "pretrain")
    checkpoint = load_checkpoint(path, "pretrain", config_classes=[CorruptionConfig])
    assert checkpoint["hyper_parameters"]["corruption"] == CorruptionConfig()


def garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 4)


def html(path: Path) -> None:
    path.write_text("<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>...</body></html>\n")


def truncated(path: Path) -> None:
    pretrain_like(path)
    path.write_bytes(path.read_bytes()[:300])


def empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (garbage, r"is not a PyTorch checkpoint \(1024 bytes"),
        (html, r"is an HTML page, not a checkpoint .*download the file itself"),
        (truncated, r"is truncated or corrupt \(300 bytes"),
        (empty, r"is empty \(0 bytes\)"),
    ],
)
def test_bad_files_name_the_file_the_stage_and_the_fix(tmp_path, make, problem):
    path = tmp_path / "last.ckpt"
    make(path)
    for check in (load_checkpoint, check_checkpoint):
        with pytest.raises(CheckpointError, match=problem) as caught:
            check(path, "adapt")
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and "expected an adapt-stage LP-SAM checkpoint" in message
        assert "stages/adapt.yaml" in message and "weights_only" not in message and "\n" not in message


def test_the_checkpoint_of_another_stage_is_named(tmp_path):
    path = pretrain_like(tmp_path / "last.ckpt")
    with pytest.raises(
        CheckpointError,
        match=r"last\.ckpt: this is a pretrain-stage checkpoint \(no hyper_parameters\.model\), "
        r"expected an adapt-stage LP-SAM checkpoint: "
        r"point to runs/adapt/",
    ):
        load_stage_checkpoint(path, "adapt")
    torch.save({"image_encoder.w": torch.ones(1)}, tmp_path / "sam.pth")
    with pytest.raises(CheckpointError, match=r"this is a plain state dict .* expected a pretrain-stage checkpoint"):
        load_checkpoint(tmp_path / "sam.pth", "pretrain")


def test_missing_checkpoint_names_the_stage_that_writes_it(tmp_path):
    with pytest.raises(
        CheckpointError,
        match=r"nope\.ckpt: checkpoint not found; expected a pretrain-stage checkpoint: .*stages/pretrain\.yaml",
    ):
        load_checkpoint(tmp_path / "nope.ckpt", "pretrain")
    assert main(["export", "--ckpt", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "out")]) == 1
