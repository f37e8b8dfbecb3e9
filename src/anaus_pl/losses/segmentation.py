"""Segmentation loss of LP-SAM adaptation: ``(1 - a) * BCE + a * Dice`` per class (paper: a = 0.15)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from anaus_pl.losses.overlap import soft_dice_loss
from anaus_pl.losses.reduction import masked_mean


def bce_dice_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    dice_weight: float = 0.15,
    weights: torch.Tensor | None = None,
    smooth: float = 1.0,
) -> torch.Tensor:
    """Mean over (image, class) of ``(1 - dice_weight) * BCE + dice_weight * Dice``.

    ``logits``/``targets`` are ``(..., H, W)`` (targets 0/1); ``weights`` ``(...)``
    selects which (image, class) pairs count (1: supervised, 0: the image's data
    set does not annotate that class). Returns 0 when nothing is supervised.

    The Dice term is taken on pairs whose target is non-empty only: on an empty
    target soft Dice is ``1 - s / (sum(p) + s)``, near 1 for any faint response,
    and where most pairs are absent classes (every organ but the image's own) it
    drives a class to predict nothing anywhere. Absent classes are supervised as
    empty by the BCE term alone.
    """
    if not 0.0 <= dice_weight <= 1.0:
        raise ValueError(f"dice_weight must lie in [0, 1], got {dice_weight}")
    targets = targets.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean((-2, -1))
    present = (targets.sum((-2, -1)) > 0).to(logits.dtype)
    per_item = (1 - dice_weight) * bce + dice_weight * present * soft_dice_loss(logits, targets, smooth)
    return masked_mean(per_item, weights)
