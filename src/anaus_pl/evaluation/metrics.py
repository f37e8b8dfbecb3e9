"""Downstream metrics: classification from torchmetrics, segmentation per image then averaged.

Segmentation (binary masks, per image, then the mean over images of a fold):

* ``dice = 2 TP / (2 TP + FP + FN)``, ``iou = TP / (TP + FP + FN)``,
  ``ppv = TP / (TP + FP)``, ``sensitivity = TP / (TP + FN)``;
* ``hd95`` = max of the two directed 95th percentiles of the distances (pixels)
  from each boundary pixel of one mask to the nearest boundary pixel of the other.

Empty-mask policy (see docs/evaluate.md): a ratio whose denominator is zero
is 1 when truth and prediction are both empty (nothing to find, nothing
found) and 0 otherwise; ``hd95`` is 0 when both are empty and the image
diagonal (the largest possible distance) when exactly one of them is empty.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from anaus_pl.losses.overlap import empty_safe_ratio, hard_dice, hard_iou, overlap_counts

SEGMENTATION_METRICS = ("dice", "iou", "ppv", "sensitivity", "hd95")
CLASSIFICATION_METRICS = ("accuracy", "macro_f1", "auroc")


def classification_collection(num_classes: int) -> MetricCollection:
    """torchmetrics for one fold: accuracy, macro-F1, per-class precision/recall, macro AUROC, confusion matrix."""
    return MetricCollection(
        {
            "accuracy": MulticlassAccuracy(num_classes, average="micro"),
            "macro_f1": MulticlassF1Score(num_classes, average="macro"),
            "precision": MulticlassPrecision(num_classes, average="none"),
            "recall": MulticlassRecall(num_classes, average="none"),
            "auroc": MulticlassAUROC(num_classes, average="macro"),
            "confusion": MulticlassConfusionMatrix(num_classes),
        }
    )


def classification_metrics(probabilities: torch.Tensor, targets: torch.Tensor, class_names: list[str]) -> dict:
    """Metrics of one fold from ``(N, C)`` class probabilities and ``(N,)`` integer targets.

    Scalars are floats; per-class precision/recall are dicts by class name;
    the confusion matrix is a list of rows (truth) by columns (prediction).
    """
    collection = classification_collection(len(class_names))
    values = collection(probabilities.float(), targets.long())
    out: dict = {name: float(values[name]) for name in CLASSIFICATION_METRICS}
    for name in ("precision", "recall"):
        out[name] = {c: float(v) for c, v in zip(class_names, values[name].tolist())}
    out["confusion"] = values["confusion"].long().tolist()
    return out


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Symmetric 95th-percentile Hausdorff distance in pixels between two binary masks (policy above)."""
    prediction, truth = prediction.astype(bool), truth.astype(bool)
    if not prediction.any() and not truth.any():
        return 0.0
    if not prediction.any() or not truth.any():
        return float(math.hypot(*truth.shape))
    pred_edge, truth_edge = _boundary(prediction), _boundary(truth)
    to_truth = ndimage.distance_transform_edt(~truth_edge)[pred_edge]
    to_pred = ndimage.distance_transform_edt(~pred_edge)[truth_edge]
    return float(max(np.percentile(to_truth, 95), np.percentile(to_pred, 95)))


def segmentation_per_image(
    predictions: torch.Tensor, truths: torch.Tensor, with_hd95: bool = True
) -> dict[str, list[float]]:
    """Per-image Dice, IoU, PPV, sensitivity and (unless ``with_hd95`` is False) HD95 for ``(N, H, W)`` binary masks."""
    if predictions.shape != truths.shape or predictions.ndim != 3:
        raise ValueError(
            f"expected two (N, H, W) masks of one shape, got {tuple(predictions.shape)} and {tuple(truths.shape)}"
        )
    predictions, truths = predictions.bool(), truths.bool()
    tp, fp, fn = overlap_counts(predictions, truths)
    both_empty = (tp + fp + fn) == 0
    out = {
        "dice": hard_dice(predictions, truths),
        "iou": hard_iou(predictions, truths),
        "ppv": empty_safe_ratio(tp, tp + fp, both_empty),
        "sensitivity": empty_safe_ratio(tp, tp + fn, both_empty),
    }
    result = {name: values.tolist() for name, values in out.items()}
    if with_hd95:
        result["hd95"] = [hd95(p.numpy(), t.numpy()) for p, t in zip(predictions.cpu(), truths.cpu())]
    return result


def segmentation_metrics(
    predictions: torch.Tensor, truths: torch.Tensor
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Per-image values and their means (the fold's metrics)."""
    per_image = segmentation_per_image(predictions, truths)
    return {name: float(np.mean(values)) for name, values in per_image.items()}, per_image
