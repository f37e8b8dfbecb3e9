"""SLURM requeue at a step boundary: the SIGUSR1 handler only raises a flag; the ranks save together.

Lightning's own ``SLURMEnvironment(auto_requeue=True)`` saves the HPC checkpoint inside the signal
handler. Under DDP that save runs collectives (a barrier) at whatever point each rank was interrupted;
when one rank is inside the gradient all-reduce and another enters the barrier, the job hangs until
SLURM kills it (seen on the local cluster with 2 gloo ranks). Here the handler only sets a flag; at the
end of every training batch the ranks agree whether any of them was signalled (one all-reduce of a
bool), and then all save ``hpc_ckpt_<n>.ckpt`` in ``default_root_dir`` at the same point and rank 0 runs
``scontrol requeue``. Lightning restores that checkpoint when the requeued job starts (it looks for
``hpc_ckpt_*`` whenever it runs under SLURM), exactly as after its own handler.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.plugins.environments import SLURMEnvironment

log = logging.getLogger(__name__)


class SLURMStepRequeue(SLURMEnvironment):
    """``SLURMEnvironment`` whose requeue is done by :class:`RequeueAtStepBoundary` (added by the trainer).

    Args:
        requeue_signal: the signal SLURM sends before the time limit (``--signal=SIGUSR1@90``).
    """

    def __init__(self, requeue_signal: signal.Signals = signal.SIGUSR1) -> None:
        super().__init__(auto_requeue=False, requeue_signal=requeue_signal)


def next_hpc_checkpoint(root_dir: str | Path) -> Path:
    """``root_dir/hpc_ckpt_<n+1>.ckpt`` after the highest existing ``n`` (Lightning's naming)."""
    numbers = [
        int(m.group(1))
        for p in Path(root_dir).glob("hpc_ckpt_*.ckpt")
        if (m := re.fullmatch(r"hpc_ckpt_(\d+)\.ckpt", p.name))
    ]
    return Path(root_dir) / f"hpc_ckpt_{max(numbers, default=0) + 1}.ckpt"


def slurm_job_id() -> str:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for array tasks, else the job id."""
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ["SLURM_JOB_ID"]


class RequeueAtStepBoundary(Callback):
    """On the requeue signal: after the current batch, every rank saves the HPC checkpoint, rank 0 requeues.

    In ``predict`` (the annotate stage) rank 0 only requeues: the store's committed frames are the state,
    and ranks may hold different numbers of batches, so no collective runs there. Training then goes on
    until SLURM stops the job for its restart, as after Lightning's handler.
    """

    def __init__(self, requeue_signal: signal.Signals = signal.SIGUSR1) -> None:
        self.requeue_signal = requeue_signal
        self.signalled = False
        self._previous_handler: object = None

    def _flag(self, signum: int, frame: object) -> None:
        self.signalled = True

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._previous_handler = signal.signal(self.requeue_signal, self._flag)
        print(
            f"SLURM requeue at batch boundaries on {signal.Signals(self.requeue_signal).name} (rank {trainer.global_rank})",
            flush=True,
        )

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._previous_handler is not None:
            signal.signal(self.requeue_signal, self._previous_handler)

    def _requeue(self) -> None:
        job_id = slurm_job_id()
        done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
        if done.returncode == 0:
            print(f"Requeued SLURM job: {job_id}", flush=True)
        else:
            log.warning("scontrol requeue %s failed (%s): the run continues", job_id, done.stderr.strip())

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if not trainer.strategy.reduce_boolean_decision(self.signalled, all=False):
            return
        self.signalled = False
        path = next_hpc_checkpoint(trainer.default_root_dir)
        trainer.strategy.barrier("requeue-path")  # every rank named the path before rank 0 creates it
        trainer.save_checkpoint(path)
        print(f"requeue signal: saved {path} at global_step={trainer.global_step}", flush=True)
        if trainer.is_global_zero:
            self._requeue()

    def on_predict_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self.signalled:
            self.signalled = False
            if trainer.is_global_zero:
                self._requeue()
