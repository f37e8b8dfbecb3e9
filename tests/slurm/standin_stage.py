"""A tiny Lightning stage that stands in for adapt / annotate / pretrain / evaluate in SLURM tests.

It exercises what the operations layer must carry for every real stage: LightningCLI subclass mode,
DDP over ``srun`` tasks, the SLURM requeue path (HPC checkpoint in ``default_root_dir``, resume) and
chaining through files (each stage ``requires`` the previous stage's ``result.json``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def _log(message: str) -> None:
    print(f"[standin] {message}", flush=True)


class StandInData(LightningDataModule):
    """A fixed linear-regression problem, the same on every rank (seeded)."""

    def __init__(self, num_samples: int = 256, batch_size: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(num_samples, 8, generator=generator)
        targets = inputs @ torch.linspace(-1.0, 1.0, 8).unsqueeze(1)
        self.dataset = TensorDataset(inputs, targets)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.hparams.batch_size, shuffle=True)


class StandInModule(LightningModule):
    """Linear + BatchNorm regressor that writes ``out_dir/result.json`` when fit ends.

    Args:
        out_dir: where ``result.json`` goes (``result_fold<K>.json`` when ``fold`` is given).
        requires: files that must exist before training (the previous stage's outputs).
        step_sleep: seconds slept per step, so a run lasts long enough to be signalled mid-run.
        fold: the evaluate fold this run stands for (set by the job array).
        report_every: print the global step every this many steps (rank 0).
    """

    def __init__(
        self,
        out_dir: str,
        requires: list[str] | None = None,
        step_sleep: float = 0.0,
        fold: int | None = None,
        report_every: int = 10,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))

    def on_fit_start(self) -> None:
        missing = [path for path in self.hparams.requires or [] if not Path(path).is_file()]
        if missing:
            raise FileNotFoundError(f"stand-in stage needs the previous stage's output: {missing}")

    def on_train_start(self) -> None:
        _log(
            f"rank {self.global_rank}/{self.trainer.world_size} start global_step={self.global_step} "
            f"env={type(self.trainer._accelerator_connector.cluster_environment).__name__} "
            f"restart={os.environ.get('SLURM_RESTART_COUNT', '0')}"
        )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        loss = nn.functional.mse_loss(self.net(inputs), targets)
        self.log("train/loss", loss, sync_dist=True, prog_bar=True)
        if self.hparams.step_sleep:
            time.sleep(self.hparams.step_sleep)
        if self.global_rank == 0 and self.global_step % self.hparams.report_every == 0:
            _log(f"step global_step={self.global_step} loss={loss.item():.4f}")
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def on_fit_end(self) -> None:
        if self.global_rank != 0:
            return
        name = "result.json" if self.hparams.fold is None else f"result_fold{self.hparams.fold}.json"
        out = Path(self.hparams.out_dir) / name
        out.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "global_step": self.global_step,
            "world_size": self.trainer.world_size,
            "restart": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
            "fold": self.hparams.fold,
        }
        out.write_text(json.dumps(result))
        _log(f"done global_step={self.global_step} wrote {out}")
