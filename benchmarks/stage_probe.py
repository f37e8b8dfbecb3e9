"""A Lightning callback that measures a stage's loop: images/s after a warm-up and peak memory, as JSON.

Added from the command line (``benchmarks/`` on ``PYTHONPATH``)::

    anaus-pl fit --config stages/pretrain.yaml --trainer.callbacks+=stage_probe.StageProbe \\
        --trainer.callbacks.out=runs/gpu_check/pretrain.json
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


def batch_images(batch: Any) -> int:
    """Images in a batch: the leading size of its first tensor (dicts, lists and tuples searched in order)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else []
    for item in items:
        found = batch_images(item)
        if found:
            return found
    return 0


def peak_memory_mib(device: torch.device) -> tuple[float, str]:
    """Peak CUDA memory allocated on ``device``, else the process' peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"


class StageProbe(Callback):
    """Times the train (fit) or predict batches after the first ``skip`` and writes ``out`` at teardown.

    ``images_per_s`` counts every rank's images (this rank's rate x world size).
    """

    def __init__(self, out: str, skip: int = 1) -> None:
        self.out, self.skip = Path(out), skip
        self.batches = self.images = 0
        self.seconds = 0.0
        self._start = 0.0

    def _begin(self, pl_module: LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self._start = time.perf_counter()

    def _finish(self, pl_module: LightningModule, batch: Any) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        if self.batches >= self.skip:
            self.seconds += time.perf_counter() - self._start
            self.images += batch_images(batch)
        self.batches += 1

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._begin(pl_module)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._finish(pl_module, batch)

    def on_predict_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._begin(pl_module)

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._finish(pl_module, batch)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        peak, kind = peak_memory_mib(pl_module.device)
        rate = self.images / self.seconds * trainer.world_size if self.seconds else None
        result = {
            "stage": stage,
            "batches": self.batches,
            "timed_batches": max(self.batches - self.skip, 0),
            "world_size": trainer.world_size,
            "images_per_s": rate,
            "peak_memory_mib": round(peak, 1),
            "peak_memory_kind": kind,
        }
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(result, indent=2) + "\n")
