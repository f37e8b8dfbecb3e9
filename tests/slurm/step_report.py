"""A callback the SLURM tests add to the real fit stages: prints the global step, writes result.json.

The requeue test reads these lines from the job log (``start global_step=N ... restart=R`` after a
requeue) and compares ``result.json``'s final ``global_step`` with the uninterrupted run's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer


class StepReport(Callback):
    """Rank-0 step lines every ``every`` steps and ``out_dir/result.json`` at the end of fit.

    Args:
        out_dir: where ``result.json`` is written (global step, world size, SLURM restart count).
        every: print ``step global_step=N`` every this many steps.
    """

    def __init__(self, out_dir: str, every: int = 5) -> None:
        self.out_dir = Path(out_dir)
        self.every = every

    @staticmethod
    def _restart() -> int:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0"))

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        print(
            f"[step_report] rank {trainer.global_rank}/{trainer.world_size} start global_step={trainer.global_step} "
            f"restart={self._restart()}",
            flush=True,
        )

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.global_rank == 0 and trainer.global_step % self.every == 0:
            print(f"[step_report] step global_step={trainer.global_step}", flush=True)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        result = {"global_step": trainer.global_step, "world_size": trainer.world_size, "restart": self._restart()}
        (self.out_dir / "result.json").write_text(json.dumps(result))
        print(f"[step_report] done global_step={trainer.global_step}", flush=True)
