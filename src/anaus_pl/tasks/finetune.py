"""The downstream fine-tuning LightningModule: classification, FPN or Mask R-CNN segmentation.

It wires an init's backbone (:mod:`anaus_pl.models.downstream`) to a head,
trains what the protocol allows, logs the selection metric (``val/accuracy``
or ``val/dice``) and keeps the test fold's predictions for the runner.

Under DDP the selection metric is a per-image torchmetrics mean, synchronised
across ranks, and every rank ends the test with the whole fold's predictions
(gathered, the distributed sampler's padding duplicates dropped).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule
from scipy import ndimage
from torch.nn import functional as F
from torchmetrics import MeanMetric

from anaus_pl.evaluation.metrics import segmentation_per_image
from anaus_pl.models.compile import compile_modules
from anaus_pl.models.downstream import BackboneSpec, Classifier, FPNSegmenter, StagedEncoder, build_init, build_mask_rcnn

Head = Literal["linear", "fpn", "maskrcnn"]


def instance_targets(mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mask R-CNN targets from a binary ``(H, W)`` mask: one instance per connected component."""
    components, count = ndimage.label(mask.detach().cpu().numpy() > 0.5)
    masks, boxes = [], []
    for k in range(1, count + 1):
        ys, xs = np.nonzero(components == k)
        if ys.size < 4:  # specks from augmentation cannot make a box
            continue
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        masks.append(components == k)
    h, w = mask.shape
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4).to(mask.device),
        "labels": torch.ones(len(boxes), dtype=torch.int64, device=mask.device),
        "masks": torch.from_numpy(np.array(masks, dtype=np.uint8).reshape(-1, h, w)).to(mask.device),
    }


def soft_dice_loss(logits: torch.Tensor, truth: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - smoothed Dice of sigmoid probabilities, per image then averaged."""
    probabilities = logits.sigmoid().flatten(1)
    truth = truth.flatten(1)
    overlap = (probabilities * truth).sum(1)
    return (1 - (2 * overlap + eps) / (probabilities.sum(1) + truth.sum(1) + eps)).mean()


class FinetuneModule(LightningModule):
    """Fine-tunes one init on one task fold.

    Args:
        init: ``encoder:<path>``, ``random``, ``torchvision:<file>`` or ``timm:<file>``.
        head: ``linear`` (classification), ``fpn`` or ``maskrcnn`` (segmentation).
        num_classes: classes of a classification task (ignored for segmentation).
        arch, library: the backbone built for ``random`` and user weight files.
        mode: ``finetune`` (last ``trainable_stages`` stages + head), ``linear`` (head only) or ``full``.
        optimizer: ``adam`` or ``sgd`` (momentum ``momentum``); cosine-annealed over ``max_epochs``.
        image_size: the letterboxed input size (Mask R-CNN needs it for its transform and anchors).
        score_threshold: Mask R-CNN detections at least this confident form the predicted mask.
        compile: ``torch.compile`` the model (backbone and head); off by default (slow to compile on a CPU).
    """

    def __init__(self, init: str = "random", head: Head = "linear", num_classes: int = 2, arch: str = "resnet18",
                 library: str = "torchvision", mode: Literal["finetune", "linear", "full"] = "finetune",
                 trainable_stages: int = 3, optimizer: Literal["adam", "sgd"] = "adam", lr: float = 0.01,
                 weight_decay: float = 1e-4, momentum: float = 0.9, fpn_channels: int = 64, image_size: int = 224,
                 score_threshold: float = 0.5, dropout: float = 0.0, compile: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        backbone, _, mean, std = build_init(init, BackboneSpec(arch, library))
        encoder = StagedEncoder(backbone, mean, std)
        encoder.set_trainable(mode, trainable_stages)
        if head == "linear":
            self.model = Classifier(encoder, num_classes, dropout)
        elif head == "fpn":
            self.model = FPNSegmenter(encoder, fpn_channels)
        elif head == "maskrcnn":
            self.model = build_mask_rcnn(encoder, image_size, fpn_channels)
        else:
            raise ValueError(f"head must be linear, fpn or maskrcnn, got {head!r}")
        if compile:
            compile_modules(self.model)
        self.val_score = MeanMetric()  # per-image accuracy or Dice, weighted by images across ranks
        self.test_outputs: dict[str, list[torch.Tensor]] = {}

    @property
    def monitor(self) -> str:
        """The validation metric used for model selection (higher is better)."""
        return "val/accuracy" if self.hparams.head == "linear" else "val/dice"

    def predict_masks(self, images: torch.Tensor) -> torch.Tensor:
        """Binary ``(B, H, W)`` masks (segmentation heads)."""
        if self.hparams.head == "fpn":
            return self.model(images) > 0
        detections = self.model(list(images))
        masks = []
        for found in detections:
            keep = found["scores"] >= self.hparams.score_threshold
            instance = found["masks"][keep, 0] > 0.5
            masks.append(instance.any(0) if instance.numel() else torch.zeros(images.shape[-2:], dtype=torch.bool, device=images.device))
        return torch.stack(masks)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images = batch["image"]
        if self.hparams.head == "linear":
            loss = F.cross_entropy(self.model(images), batch["label"])
        elif self.hparams.head == "fpn":
            logits = self.model(images)
            loss = F.binary_cross_entropy_with_logits(logits, batch["mask"]) + soft_dice_loss(logits, batch["mask"])
        else:
            losses = self.model(list(images), [instance_targets(m) for m in batch["mask"]])
            loss = sum(losses.values())
        self.log("train/loss", loss, prog_bar=True, batch_size=len(images))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        images = batch["image"]
        if self.hparams.head == "linear":
            logits = self.model(images)
            self.log("val/loss", F.cross_entropy(logits, batch["label"]), batch_size=len(images), sync_dist=True)
            self.val_score.update((logits.argmax(1) == batch["label"]).float())
        else:
            dice = segmentation_per_image(self.predict_masks(images).cpu(), batch["mask"].cpu() > 0.5, with_hd95=False)["dice"]
            self.val_score.update(torch.as_tensor(np.asarray(dice), dtype=torch.float32, device=self.device))
        self.log(self.monitor, self.val_score, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(images))

    def on_test_epoch_start(self) -> None:
        self.test_outputs = {"index": [], "prediction": []}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        images = batch["image"]
        if self.hparams.head == "linear":
            prediction = self.model(images).softmax(1)
        else:
            prediction = self.predict_masks(images)
        self.test_outputs["index"].append(batch["index"].cpu())
        self.test_outputs["prediction"].append(prediction.cpu())

    def on_test_epoch_end(self) -> None:
        """Every rank gets the whole test fold: its shards gathered, padding duplicates dropped, in index order."""
        if self.trainer.world_size == 1 or not self.test_outputs["index"]:
            return
        index = torch.cat(self.test_outputs["index"]).to(self.device)
        prediction = torch.cat(self.test_outputs["prediction"]).to(self.device)
        index = self.all_gather(index).flatten(0, 1).cpu()
        prediction = self.all_gather(prediction.float()).flatten(0, 1).cpu().to(prediction.dtype)  # gloo gathers no bool
        unique, first = np.unique(index.numpy(), return_index=True)
        self.test_outputs = {"index": [torch.from_numpy(unique)], "prediction": [prediction[torch.from_numpy(first)]]}

    def configure_optimizers(self) -> dict:
        parameters = [p for p in self.parameters() if p.requires_grad]
        if self.hparams.optimizer == "adam":
            optimizer = torch.optim.Adam(parameters, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        elif self.hparams.optimizer == "sgd":
            optimizer = torch.optim.SGD(parameters, lr=self.hparams.lr, momentum=self.hparams.momentum, weight_decay=self.hparams.weight_decay)
        else:
            raise ValueError(f"optimizer must be adam or sgd, got {self.hparams.optimizer!r}")
        epochs = max(1, self.trainer.max_epochs or 1)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)}
