"""Pictures of predictions against truth for TensorBoard."""

from __future__ import annotations

import torch

PALETTE = (
    torch.tensor(
        [
            [230, 25, 75],
            [60, 180, 75],
            [255, 225, 25],
            [0, 130, 200],
            [245, 130, 48],
            [145, 30, 180],
            [70, 240, 240],
            [240, 50, 230],
        ],
        dtype=torch.float32,
    )
    / 255
)


def label_overlay(image: torch.Tensor, label: torch.Tensor, alpha: float = 0.45) -> torch.Tensor:
    """Gray ``(1, H, W)`` image in [0, 1] with label map ``(H, W)`` (0 = none) blended in colour -> ``(3, H, W)``."""
    rgb = image.expand(3, -1, -1).clone()
    for value in label.unique().tolist():
        if value == 0:
            continue
        colour = PALETTE[(value - 1) % len(PALETTE)].to(image.device).view(3, 1)
        where = label == value
        rgb[:, where] = (1 - alpha) * rgb[:, where] + alpha * colour
    return rgb


def prediction_labels(probabilities: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-pixel label map ``(B, H, W)`` from per-class probabilities ``(B, C, H, W)``: argmax above threshold."""
    best, index = probabilities.max(1)
    return torch.where(best > threshold, index + 1, torch.zeros_like(index))


def comparison_grid(images: torch.Tensor, truth: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """One row per image: truth overlay | prediction overlay, as a ``(3, H', W')`` picture."""
    rows = [torch.cat([label_overlay(i, t), label_overlay(i, p)], dim=2) for i, t, p in zip(images, truth, predicted)]
    return torch.cat(rows, dim=1).clamp(0, 1)
