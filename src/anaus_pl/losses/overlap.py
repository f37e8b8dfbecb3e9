"""The Dice/IoU family over the last two dimensions: a soft Dice loss on logits, hard Dice and IoU of binary masks.

With ``TP, FP, FN`` counted per leading index (image, class, ...):

* ``hard_dice = 2 TP / (2 TP + FP + FN)``, ``hard_iou = TP / (TP + FP + FN)``;
* empty policy: both masks empty (a zero denominator) scores 1 (nothing to find, nothing found); with
  ``smooth = s > 0`` the ratios are ``(2 TP + s) / (2 TP + FP + FN + s)`` and ``(TP + s) / (TP + FP + FN + s)``,
  which also give 1 there;
* ``soft_dice_loss = 1 - (2 sum(p y) + s) / (sum(p) + sum(y) + s)`` with ``p = sigmoid(logits)``.

Used by the adapt loss and its validation, the downstream segmentation kind and the evaluation metrics.
"""

from __future__ import annotations

import torch


def soft_dice_loss(logits: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """``1 - (2 sum(p y) + s) / (sum(p) + sum(y) + s)`` per leading index, over the last two dims.

    An empty target with an empty prediction scores 0; an empty target with a
    non-empty prediction is penalised (absent classes are supervised as empty).
    """
    probs = logits.sigmoid()
    intersection = (probs * targets).sum((-2, -1))
    total = probs.sum((-2, -1)) + targets.sum((-2, -1))
    return 1 - (2 * intersection + smooth) / (total + smooth)


def overlap_counts(predicted: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Float ``(TP, FP, FN)`` of two binary masks ``(..., H, W)``, per leading index."""
    predicted, target = predicted.bool(), target.bool()
    tp = (predicted & target).sum((-2, -1)).float()
    fp = (predicted & ~target).sum((-2, -1)).float()
    fn = (~predicted & target).sum((-2, -1)).float()
    return tp, fp, fn


def empty_safe_ratio(numerator: torch.Tensor, denominator: torch.Tensor, both_empty: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator``; where the denominator is 0: 1 if ``both_empty`` (truth and prediction), else 0."""
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1), both_empty.float())


def _smoothed_or_empty_safe(numerator: torch.Tensor, denominator: torch.Tensor, smooth: float) -> torch.Tensor:
    if smooth:
        return (numerator + smooth) / (denominator + smooth)
    return empty_safe_ratio(numerator, denominator, denominator == 0)


def hard_dice(predicted: torch.Tensor, target: torch.Tensor, smooth: float = 0.0) -> torch.Tensor:
    """Dice ``2 TP / (2 TP + FP + FN)`` of binary masks ``(..., H, W)`` per leading index (empty vs empty: 1)."""
    tp, fp, fn = overlap_counts(predicted, target)
    return _smoothed_or_empty_safe(2 * tp, 2 * tp + fp + fn, smooth)


def hard_iou(predicted: torch.Tensor, target: torch.Tensor, smooth: float = 0.0) -> torch.Tensor:
    """IoU ``TP / (TP + FP + FN)`` of binary masks ``(..., H, W)`` per leading index (empty vs empty: 1)."""
    tp, fp, fn = overlap_counts(predicted, target)
    return _smoothed_or_empty_safe(tp, tp + fp + fn, smooth)
