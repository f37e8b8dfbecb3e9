"""Binary segmentation: FPN or Mask R-CNN heads; a light decoder on frozen multi-scale features as the linear protocol."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn
from torch.nn import functional as F

from anaus_pl.atomic import atomic_path
from anaus_pl.data.datamodules.finetune import LoadedTask, foreground_ids, load_task
from anaus_pl.data.layouts.base import Layout, SampleRef
from anaus_pl.evaluation.kinds.base import DownstreamKind, TaskOptions
from anaus_pl.evaluation.metrics import SEGMENTATION_METRICS, segmentation_metrics
from anaus_pl.losses.overlap import hard_dice, soft_dice_loss
from anaus_pl.models.downstream import FPNSegmenter, StagedEncoder, build_mask_rcnn
from anaus_pl.models.probes import fit_decoder

if TYPE_CHECKING:
    from matplotlib.figure import Figure


log = logging.getLogger("anaus_pl.evaluate")


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


class Segmentation(DownstreamKind):
    name = "segmentation"
    heads = ("fpn", "maskrcnn")
    protocols = ("finetune", "linear")
    frozen_protocols = {"linear": "a light decoder (1x1 projections, 3x3 conv) trained on frozen four-level features"}
    metrics = SEGMENTATION_METRICS
    headline = "dice"
    lower_is_better = frozenset({"hd95"})
    stratify = False
    score_threshold = 0.5  # Mask R-CNN detections at least this confident form the predicted mask

    def prepare(
        self, layout: Layout, refs: list[SampleRef], task: TaskOptions
    ) -> tuple[list[SampleRef], LoadedTask, list[str]]:
        data = load_task(layout, refs, task.image_size, foreground_ids(layout, task.foreground), description=task.name)
        class_names = ["background", task.foreground[0] if task.foreground else "foreground"]
        if task.empty_masks == "exclude":
            keep = np.flatnonzero(data.masks.reshape(len(refs), -1).any(1))
            if len(keep) < len(refs):
                log.info(
                    "%s: %d images with empty masks excluded (empty_masks: exclude)", task.name, len(refs) - len(keep)
                )
            refs = [refs[i] for i in keep]
            data = LoadedTask(
                [data.sources[i] for i in keep], data.images[keep], data.masks[keep], None, data.valid_hw[keep]
            )
        return refs, data, class_names

    def build_head(self, encoder: StagedEncoder, options: Mapping[str, Any]) -> nn.Module:
        if options["head"] == "maskrcnn":
            return build_mask_rcnn(encoder, options["image_size"], options["fpn_channels"])
        return FPNSegmenter(encoder, options["fpn_channels"], options.get("foreground_prior"))

    @staticmethod
    def _is_mask_rcnn(model: nn.Module) -> bool:
        return not isinstance(model, FPNSegmenter)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        images, masks = batch["image"], batch["mask"]
        if self._is_mask_rcnn(model):
            return sum(model(list(images), [instance_targets(m) for m in masks]).values())
        logits = model(images)
        return F.binary_cross_entropy_with_logits(logits, masks) + soft_dice_loss(logits, masks).mean()

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Binary ``(B, H, W)`` masks."""
        if not self._is_mask_rcnn(model):
            return model(images) > 0
        masks = []
        for found in model(list(images)):
            instance = found["masks"][found["scores"] >= self.score_threshold, 0] > 0.5
            masks.append(
                instance.any(0)
                if instance.numel()
                else torch.zeros(images.shape[-2:], dtype=torch.bool, device=images.device)
            )
        return torch.stack(masks)

    def validation_scores(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return hard_dice(self.predict(model, batch["image"]), batch["mask"] > 0.5)

    def frozen_predict(
        self,
        protocol: str,
        features: list[torch.Tensor],
        data: LoadedTask,
        train: np.ndarray,
        test: np.ndarray,
        task: TaskOptions,
        num_classes: int,
        seed: int,
    ) -> torch.Tensor:
        if protocol != "linear":
            raise ValueError(f"segmentation has no frozen protocol {protocol!r}; use linear (a light decoder)")
        train_t, test_t = torch.from_numpy(train), torch.from_numpy(test)
        decoder = fit_decoder(
            [f[train_t] for f in features],
            torch.from_numpy(data.masks[train]),
            task.fpn_channels,
            task.probe_epochs,
            task.batch_size,
            seed=seed,
            prior=task.foreground_prior,
        )
        with torch.no_grad():
            return decoder([f[test_t] for f in features], data.images.shape[-1]) > 0

    def score(
        self, prediction: torch.Tensor, index: np.ndarray, data: LoadedTask, class_names: list[str]
    ) -> dict[str, Any]:
        masks = prediction.numpy().astype(bool)
        for row, i in enumerate(index):  # letterbox padding is no image: predictions there do not count
            h, w = data.valid_hw[i]
            masks[row, h:, :] = False
            masks[row, :, w:] = False
        prediction.copy_(torch.from_numpy(masks))  # the saved cases show what was scored
        means, per_image = segmentation_metrics(
            torch.from_numpy(masks), torch.from_numpy(data.masks[index].astype(bool))
        )
        return {"metrics": means, "per_image": {"source": [data.sources[i] for i in index], **per_image}}

    def save_cases(
        self,
        folder: Path,
        stem: str,
        data: LoadedTask,
        index: np.ndarray,
        prediction: torch.Tensor,
        record: dict,
        count: int,
    ) -> None:
        """The fold's best and worst images by Dice, for the overlay figure."""
        dice = np.asarray(record["per_image"]["dice"])
        order = np.argsort(dice, kind="stable")
        chosen = np.unique(np.concatenate([order[:count], order[-count:]]))
        with atomic_path(folder / f"{stem}_cases.npz") as temporary:  # the report reads it back
            np.savez_compressed(
                temporary,
                image=data.images[index[chosen]],
                truth=data.masks[index[chosen]],
                prediction=prediction.numpy().astype(bool)[chosen],
                dice=dice[chosen],
                source=np.asarray([data.sources[i] for i in index[chosen]]),
            )

    def figures(self, task: str, protocol: str, inits: dict[str, dict], results: Path, count: int) -> dict[str, Figure]:
        from anaus_pl.evaluation.figures import overlay_figure

        overlay = overlay_figure(f"{task} ({protocol})", {label: results / label for label in inits}, count)
        return {"overlays": overlay} if overlay is not None else {}
