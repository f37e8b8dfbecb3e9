"""Model selection inside one fine-tuning unit: the best epoch's weights, kept in memory."""

from __future__ import annotations

import math

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class BestWeights(Callback):
    """A CPU copy of the module's weights at the epoch with the highest ``monitor`` (the first of ties).

    What ``ModelCheckpoint(monitor, mode="max", save_top_k=1)`` and ``test(ckpt_path="best")`` do,
    without writing and reading back a checkpoint at every improvement (one per epoch early on).
    """

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.best_score = math.nan
        self.best_epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[self.monitor])
        if self.state is None or score > self.best_score or math.isnan(self.best_score):
            self.best_score, self.best_epoch = score, trainer.current_epoch
            self.state = {name: value.detach().to("cpu", copy=True) for name, value in pl_module.state_dict().items()}

    def restore(self, module: LightningModule) -> None:
        """Load the best epoch's weights into ``module``."""
        if self.state is None:
            raise RuntimeError(f"no validation logged {self.monitor!r}: there is no best epoch to restore")
        module.load_state_dict(self.state)
