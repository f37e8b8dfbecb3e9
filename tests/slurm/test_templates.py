"""slurm/*.sbatch and submit_chain.sh without a cluster: a fake `srun` records what would run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_SRUN = '#!/bin/bash\nprintf "%s\\n" "$@" > "$SRUN_ARGS"\nexit "${SRUN_STATUS:-0}"\n'


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A copy of the parts a job needs, so run directories land in tmp_path."""
    for part in ("slurm", "configs", "stages"):
        shutil.copytree(ROOT / part, tmp_path / part)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/srun").write_text(FAKE_SRUN)
    (tmp_path / "bin/srun").chmod(0o755)
    return tmp_path


def _job(home: Path, stage: str, status: int = 0, **slurm_env: str) -> tuple[int, list[str], str]:
    env = {
        "PATH": f"{home / 'bin'}:{os.environ['PATH']}",
        "HOME": str(home),
        "ANAUS_HOME": str(home),
        "ANAUS_SITE": "/dev/null",
        "SRUN_ARGS": str(home / "srun.args"),
        "SRUN_STATUS": str(status),
        "SLURM_JOB_ID": "41",
        "ANAUS_PYTHON": sys.executable,
        **slurm_env,
    }
    done = subprocess.run(["bash", str(home / f"slurm/{stage}.sbatch")], env=env, capture_output=True, text=True)
    return done.returncode, (home / "srun.args").read_text().split("\n")[:-1], done.stdout + done.stderr


def test_batch_script_exits_with_srun_status(home: Path) -> None:
    status, _, output = _job(home, "adapt", status=3)
    assert status == 3, output
    assert "srun exit status 3" in output


def test_fit_stage_takes_devices_and_nodes_from_the_allocation(home: Path) -> None:
    status, args, output = _job(
        home,
        "pretrain",
        SLURM_JOB_NUM_NODES="2",
        SLURM_NTASKS_PER_NODE="4",
        SLURM_GPUS_ON_NODE="4",
        ANAUS_PRETRAIN_ARGS="--trainer.max_epochs 2",
    )
    assert status == 0, output
    assert args[:5] == ["--kill-on-bad-exit=1", "anaus-pl", "fit", "--config", "stages/pretrain.yaml"]
    joined = " ".join(args)
    assert "--config configs/trainer/ddp.yaml --config configs/trainer/slurm.yaml" in joined
    assert (
        "--trainer.strategy ddp --trainer.num_nodes 2 --trainer.devices 4 --trainer.default_root_dir runs/pretrain/default"
        in joined
    )
    assert joined.endswith("--trainer.max_epochs 2")


def test_adapt_lets_ddp_find_the_parts_idle_in_a_phase(home: Path) -> None:
    """The presets say ``strategy: ddp``; adapt's phases each leave a part of LP-SAM without gradient."""
    _, args, _ = _job(home, "adapt", SLURM_NTASKS_PER_NODE="2")
    assert args[args.index("--trainer.strategy") + 1] == "ddp_find_unused_parameters_true"
    assert args.index("--trainer.strategy") > args.index("configs/trainer/slurm.yaml")


def test_gpu_preset_keeps_the_stage_precision_and_says_so(home: Path) -> None:
    """ddp.yaml (bf16-mixed) comes after the stage YAML; the stage's 32-true stays unless ANAUS_PRECISION asks."""
    _, args, output = _job(home, "pretrain", SLURM_GPUS_ON_NODE="2", SLURM_NTASKS_PER_NODE="2")
    assert args.index("--trainer.precision") > args.index("configs/trainer/ddp.yaml")
    assert args[args.index("--trainer.precision") + 1] == "32-true"
    assert "precision 32-true as stages/pretrain.yaml sets it (the ddp preset says bf16-mixed" in output
    _, args, output = _job(home, "pretrain", SLURM_GPUS_ON_NODE="2", ANAUS_PRECISION="bf16-mixed")
    assert args[args.index("--trainer.precision") + 1] == "bf16-mixed" and "(ANAUS_PRECISION)" in output
    # a stage config without a precision takes the preset's, and the log names the preset
    (home / "stages/pretrain.yaml").write_text("trainer:\n  max_epochs: 1\n")
    _, args, output = _job(home, "pretrain", SLURM_GPUS_ON_NODE="2")
    assert "--trainer.precision" not in args and "precision bf16-mixed from configs/trainer/ddp.yaml" in output
    _, args, output = _job(home, "adapt")  # no GPUs: the cpu preset's 32-true is the stage's too
    assert (
        "--trainer.precision" not in args and "precision 32-true (stages/adapt.yaml and the cpu preset agree)" in output
    )


def test_run_name_reaches_the_command_and_the_requeue_directory(home: Path) -> None:
    _, args, _ = _job(home, "pretrain", ANAUS_RUN="trial2")
    assert args[args.index("--run") + 1] == "trial2"
    assert args[args.index("--trainer.default_root_dir") + 1] == "runs/pretrain/trial2"
    _, args, _ = _job(home, "evaluate", ANAUS_RUN="trial2")
    assert args[1:] == ["anaus-pl", "evaluate", "--config", "stages/evaluate.yaml", "--run", "trial2"]


def test_cpu_preset_without_gpus_and_annotate_gets_trainer_flags(home: Path) -> None:
    _, args, _ = _job(home, "annotate", SLURM_NTASKS_PER_NODE="2")
    assert args[2:5] == ["annotate", "--config", "stages/annotate.yaml"]
    assert "configs/trainer/cpu.yaml" in args


@pytest.mark.parametrize(
    ("extra_env", "expected"),
    [
        ({}, ["--only_folds", "[3]"]),
        (
            {"ANAUS_EVALUATE_ARRAY_ARGS": "--only_tasks [{}]", "ANAUS_EVALUATE_ARRAY_VALUES": "pocus busi udiat tn3k"},
            ["--only_tasks", "[tn3k]"],
        ),
    ],
)
def test_evaluate_array_task_selects_its_fold_or_task(home: Path, extra_env: dict, expected: list[str]) -> None:
    status, args, output = _job(home, "evaluate", SLURM_ARRAY_TASK_ID="3", **extra_env)
    assert status == 0, output
    assert args[2:5] == ["evaluate", "--config", "stages/evaluate.yaml"]
    assert args[-2:] == expected
    assert not any(arg.startswith("--trainer.") for arg in args)


def test_evaluate_without_array_runs_whole(home: Path) -> None:
    _, args, _ = _job(home, "evaluate")
    assert args[1:] == ["anaus-pl", "evaluate", "--config", "stages/evaluate.yaml"]


def test_fresh_job_sets_stale_requeue_checkpoints_aside_a_requeued_one_keeps_them(home: Path) -> None:
    root = home / "runs/pretrain/default"
    root.mkdir(parents=True)
    (root / "hpc_ckpt_1.ckpt").write_text("old")
    _, _, output = _job(home, "pretrain", SLURM_RESTART_COUNT="1")
    assert (root / "hpc_ckpt_1.ckpt").exists(), output
    _, _, output = _job(home, "pretrain", SLURM_RESTART_COUNT="0")
    assert not (root / "hpc_ckpt_1.ckpt").exists()
    assert (root / "stale_hpc/job41/hpc_ckpt_1.ckpt").read_text() == "old", output


def test_submit_chain_links_stages_with_afterok() -> None:
    env = {**os.environ, "ANAUS_PARTITION": "gpu", "ANAUS_ACCOUNT": "lab", "ANAUS_GPUS_PER_NODE": "2"}
    done = subprocess.run(
        [str(ROOT / "slurm/submit_chain.sh"), "--dry-run", "--", "--mail-type=FAIL"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["adapt", "annotate", "pretrain", "evaluate", "evaluate-report"]
    assert "--dependency" not in lines[0]
    for before, line in zip(["adapt", "annotate", "pretrain", "evaluate"], lines[1:]):
        assert f"--dependency=afterok:<{before}>" in line
    assert all("--partition=gpu --account=lab" in line and line.endswith(".sbatch") for line in lines)
    assert "--ntasks-per-node=2 --gpus-per-node=2" in lines[2]
    assert "--array=0-4" in lines[3] and "--gpus-per-node=1" in lines[3] and "--array" not in lines[4]


def test_submit_chain_rejects_unknown_stage() -> None:
    done = subprocess.run(
        [str(ROOT / "slurm/submit_chain.sh"), "--dry-run", "--from", "train"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "unknown stage 'train'" in done.stderr
