"""The downstream fine-tuning LightningModule, generic over task kinds.

It wires an init's backbone (:mod:`anaus_pl.models.downstream`) to the head
its task kind builds, trains what the protocol allows, logs the kind's
selection metric (``val/accuracy``, ``val/dice``, ...) and keeps the test
fold's predictions for the runner. Everything kind-specific (head, loss,
predictions, validation score) comes from the ``kind`` object, so this module
needs no edit when a kind is added.

Under DDP the selection metric is a per-image torchmetrics mean, synchronised
across ranks, and every rank ends the test with the whole fold's predictions
(gathered, the distributed sampler's padding duplicates dropped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

import numpy as np
import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanMetric

from anaus_pl.models.compile import compile_modules
from anaus_pl.models.downstream import BackboneSpec, StagedEncoder, build_init


class FinetuneKind(Protocol):
    """What the module needs of a downstream task kind (see ``anaus_pl.evaluation.kinds``)."""

    monitor: str

    def build_head(self, encoder: StagedEncoder, options: Mapping[str, Any]) -> nn.Module: ...

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor: ...

    def validation_scores(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...


class FinetuneModule(LightningModule):
    """Fine-tunes one init on one task fold.

    Args:
        kind: the task kind object (builds the head, gives loss, predictions and the selection metric).
        init: ``encoder:<path>``, ``random``, ``torchvision:<file>`` or ``timm:<file>``.
        head: one of the kind's heads (``linear``; ``fpn`` or ``maskrcnn``).
        num_classes: classes of a classification task (ignored by kinds without classes).
        arch, library: the backbone built for ``random`` and user weight files.
        mode: ``finetune`` (last ``trainable_stages`` stages + head), ``linear`` (head only) or ``full``.
        optimizer: ``adam`` or ``sgd`` (momentum ``momentum``); cosine-annealed over ``max_epochs``.
        image_size: the letterboxed input size (Mask R-CNN needs it for its transform and anchors).
        foreground_prior: initial foreground probability of a mask-logit head (None: zero bias, probability 0.5).
        compile: ``torch.compile`` the model (backbone and head); off by default (slow to compile on a CPU).
    """

    def __init__(
        self,
        kind: FinetuneKind,
        init: str = "random",
        head: str = "linear",
        num_classes: int = 2,
        arch: str = "resnet18",
        library: str = "torchvision",
        mode: Literal["finetune", "linear", "full"] = "finetune",
        trainable_stages: int = 3,
        optimizer: Literal["adam", "sgd"] = "adam",
        lr: float = 0.01,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        fpn_channels: int = 64,
        image_size: int = 224,
        dropout: float = 0.0,
        foreground_prior: float | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["kind"])
        self.kind = kind
        backbone, _, mean, std = build_init(init, BackboneSpec(arch, library))
        encoder = StagedEncoder(backbone, mean, std)
        encoder.set_trainable(mode, trainable_stages)
        self.model = kind.build_head(encoder, self.hparams)
        if compile:
            compile_modules(self.model)
        self.val_score = MeanMetric()  # per-image headline values, weighted by images across ranks
        self.test_outputs: dict[str, list[torch.Tensor]] = {}

    @property
    def monitor(self) -> str:
        """The validation metric used for model selection (higher is better)."""
        return self.kind.monitor

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.kind.loss(self.model, batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_score.update(self.kind.validation_scores(self.model, batch))
        self.log(
            self.monitor, self.val_score, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(batch["image"])
        )

    def on_test_epoch_start(self) -> None:
        self.test_outputs = {"index": [], "prediction": []}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.test_outputs["index"].append(batch["index"].cpu())
        self.test_outputs["prediction"].append(self.kind.predict(self.model, batch["image"]).cpu())

    def on_test_epoch_end(self) -> None:
        """Every rank gets the whole test fold: its shards gathered, padding duplicates dropped, in index order."""
        if self.trainer.world_size == 1 or not self.test_outputs["index"]:
            return
        index = torch.cat(self.test_outputs["index"]).to(self.device)
        prediction = torch.cat(self.test_outputs["prediction"]).to(self.device)
        index = self.all_gather(index).flatten(0, 1).cpu()
        prediction = (
            self.all_gather(prediction.float()).flatten(0, 1).cpu().to(prediction.dtype)
        )  # gloo gathers no bool
        unique, first = np.unique(index.numpy(), return_index=True)
        self.test_outputs = {"index": [torch.from_numpy(unique)], "prediction": [prediction[torch.from_numpy(first)]]}

    def configure_optimizers(self) -> dict:
        parameters = [p for p in self.parameters() if p.requires_grad]
        if self.hparams.optimizer == "adam":
            optimizer = torch.optim.Adam(parameters, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        elif self.hparams.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                parameters, lr=self.hparams.lr, momentum=self.hparams.momentum, weight_decay=self.hparams.weight_decay
            )
        else:
            raise ValueError(f"optimizer must be adam or sgd, got {self.hparams.optimizer!r}")
        epochs = max(1, self.trainer.max_epochs or 1)
        return {
            "optimizer": optimizer,
            "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs),
        }
