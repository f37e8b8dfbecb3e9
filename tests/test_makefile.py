"""The Makefile's switches, read with `make -n` (prints the commands, runs none)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def _dry(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_run_name_reaches_every_stage(tmp_path: Path) -> None:
    done = _dry(
        "-o",
        ".venv/.installed-stamp",
        "chain",
        "RUN=trial2",
        f"PHANTOM_DONE={tmp_path / 'absent'}",
        f"PHANTOM={tmp_path / 'phantom'}",
    )
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if "anaus-pl" in line and "phantom" not in line]
    stages = [line.split("--config ")[1].split()[0] for line in commands]
    assert stages[0] == "stages/adapt.yaml" and stages[-1] == "stages/evaluate.yaml"
    assert set(stages) == {f"stages/{s}.yaml" for s in ("adapt", "annotate", "pretrain", "evaluate")}
    assert all(line.endswith("--run trial2") for line in commands)


@pytest.mark.parametrize(
    "torch_choice, source, pin",
    [
        ("cpu", "--index-url https://download.pytorch.org/whl/cpu", "torch==2.14.1+cpu torchvision==0.29.1+cpu"),
        (
            "cu126",
            "--index-url https://download.pytorch.org/whl/cu126",
            "torch==2.14.1+cu126 torchvision==0.29.1+cu126",
        ),
        ("cu130", "", "torch==2.14.1 torchvision==0.29.1"),
    ],
)
def test_torch_choice_picks_the_wheels_and_the_constraints_pin_the_rest(
    tmp_path: Path, torch_choice: str, source: str, pin: str
) -> None:
    done = _dry("install", f"TORCH={torch_choice}", f"VENV={tmp_path / 'venv'}")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.replace("\\\n", " ").split())
    assert f"pip install -q {source} torch".replace("  ", " ") in text and pin in text
    assert "pip install -q -c constraints.txt -e '.[dev,litemedsam,formats]'" in text
    assert not (tmp_path / "venv").exists() or not any((tmp_path / "venv").iterdir())


def test_unknown_torch_choice_is_refused() -> None:
    done = _dry("install", "TORCH=rocm")
    assert done.returncode != 0 and "TORCH=rocm: choose cpu, cu126 or cu130" in done.stderr


def test_constraints_pin_every_runtime_dependency_but_torch() -> None:
    pinned = {
        line.split("==")[0].lower()
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {"lightning", "segment-anything", "albumentations", "h5py", "nibabel", "openpyxl", "jsonargparse"} <= pinned
    assert not pinned & {"torch", "torchvision", "triton"} and not any(
        name.startswith(("nvidia-", "cuda-")) for name in pinned
    )
