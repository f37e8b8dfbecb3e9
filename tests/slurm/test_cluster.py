"""On the local SLURM cluster: the chain through slurm/*.sbatch, and a SIGUSR1 requeue that resumes.

Run by scripts/test_slurm.sh (`make test-slurm`), which starts the cluster and sources the chain
profile (tests/slurm/chain_standin.env) whose variables these tests and the jobs read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slurm
LOCAL = ROOT / "scripts" / "slurm_local.sh"


def _run(*command: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _logs(pattern: str) -> str:
    return "\n".join(f"--- {path}\n{path.read_text()}" for path in sorted((ROOT / "runs/slurm").glob(pattern)))


def _wait(job_id: str, log_pattern: str, seconds: int = 300) -> None:
    done = subprocess.run([str(LOCAL), "wait", job_id, str(seconds)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"job {job_id} did not complete: {done.stderr}\n{_logs(log_pattern)}"


def _result(path: str) -> dict:
    return json.loads((ROOT / path).read_text())


@pytest.fixture(scope="module")
def chain() -> dict[str, str]:
    for path in os.environ["ANAUS_TEST_CLEAN"].split():
        shutil.rmtree(ROOT / path, ignore_errors=True)
    lines = _run(str(ROOT / "slurm/submit_chain.sh")).split()
    job_ids = dict(zip(lines[::2], lines[1::2]))
    for stage, job_id in job_ids.items():
        _wait(job_id, f"anaus-{stage}-{job_id}*")
    return job_ids


def test_chain_runs_every_stage_in_order(chain: dict[str, str]) -> None:
    assert list(chain) == ["adapt", "annotate", "pretrain", "evaluate", "evaluate-report"]
    missing = [path for path in os.environ["ANAUS_TEST_OUTPUTS"].split() if not (ROOT / path).is_file()]
    assert not missing, f"stage outputs missing: {missing}\n{_logs('anaus-*')}"
    # afterok: a job starts only after its predecessor completed, so start times are ordered.
    starts = []
    for job_id in chain.values():
        shown = _run("scontrol", "show", "job", job_id)
        starts.append(max(re.findall(r"StartTime=(\S+)", shown)))
        assert "Dependency=" in shown
    assert starts == sorted(starts)


def test_fit_stages_ran_two_ddp_ranks_under_slurm(chain: dict[str, str]) -> None:
    log = _logs(f"anaus-pretrain-{chain['pretrain']}.out")
    # anaus_pl.requeue prints this once per rank when it runs under the slurm preset.
    assert log.count("SLURM requeue at batch boundaries on SIGUSR1") == int(os.environ["ANAUS_TASKS_PER_NODE"]), log
    assert "srun exit status 0" in log
    if os.environ.get("ANAUS_TEST_REFERENCE_RESULT"):
        assert _result(os.environ["ANAUS_TEST_REFERENCE_RESULT"])["world_size"] == 2


def test_sigusr1_requeue_resumes_to_the_same_step(chain: dict[str, str]) -> None:
    if not os.environ.get("ANAUS_TEST_REQUEUE_RESULT"):
        pytest.skip("this chain profile names no requeue result to compare (ANAUS_TEST_REQUEUE_RESULT)")
    env = dict(os.environ)
    env["ANAUS_PRETRAIN_ARGS"] = f"{env['ANAUS_PRETRAIN_ARGS']} {env['ANAUS_TEST_REQUEUE_ARGS']}"
    env["ANAUS_PRETRAIN_ROOT_DIR"] = env["ANAUS_TEST_REQUEUE_ROOT_DIR"]
    job_id = _run(
        "sbatch",
        "--parsable",
        "--job-name=anaus-requeue",
        "--output=runs/slurm/%x-%j.out",
        "--nodes=1",
        f"--ntasks-per-node={env['ANAUS_TASKS_PER_NODE']}",
        f"--cpus-per-task={env['ANAUS_CPUS_PER_TASK']}",
        "slurm/pretrain.sbatch",
        env=env,
    ).strip()
    log_path = ROOT / f"runs/slurm/anaus-requeue-{job_id}.out"
    deadline = time.monotonic() + 180
    while not re.search(r"global_step=(1[5-9]|[2-9]\d)\b", log_path.read_text() if log_path.exists() else ""):
        assert time.monotonic() < deadline, f"training never reached step 15:\n{_logs(log_path.name)}"
        time.sleep(0.5)
    _run("scancel", "--signal=USR1", job_id)
    _wait(job_id, log_path.name)

    log = log_path.read_text()
    assert f"Requeued SLURM job: {job_id}" in log, log
    assert "Restoring states from" in log and "hpc_ckpt_1.ckpt" in log, log
    resumed = [int(step) for step in re.findall(r"start global_step=(\d+) .*restart=1", log)]
    assert resumed and resumed[0] > 0, f"no resumed start in the log:\n{log}"
    print(f"requeued job {job_id} resumed at global_step {resumed[0]}")
    requeued = _result(env["ANAUS_TEST_REQUEUE_RESULT"])
    assert requeued["restart"] == 1
    assert requeued["global_step"] == _result(env["ANAUS_TEST_REFERENCE_RESULT"])["global_step"]
    assert "Restarts=1" in _run("scontrol", "show", "job", job_id)
