"""A picture of a pretraining batch: view 1, view 2, corrupted core, clean core, with their regions coloured."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.utils import draw_segmentation_masks, make_grid

_PALETTE = [
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#fabed4",
    "#469990",
    "#dcbeff",
    "#9a6324",
    "#fffac8",
    "#800000",
    "#aaffc3",
    "#808000",
]


def overlay(image: torch.Tensor, label_map: torch.Tensor, alpha: float = 0.35) -> torch.Tensor:
    """``image (1, H, W)`` in [0, 1] and ``label_map (H, W)`` -> uint8 ``(3, H, W)``; id 0 stays uncoloured."""
    rgb = (image.clamp(0, 1) * 255).to(torch.uint8).expand(3, -1, -1).cpu()
    ids = [int(i) for i in label_map.unique() if int(i) > 0]
    if not ids:
        return rgb
    masks = torch.stack([label_map.cpu() == i for i in ids])
    colors = [_PALETTE[i % len(_PALETTE)] for i in ids]
    return draw_segmentation_masks(rgb, masks, alpha=alpha, colors=colors)


def view_grid(rows: Sequence[Sequence[tuple[torch.Tensor, torch.Tensor]]], size: int) -> torch.Tensor:
    """One grid row per image, one cell per ``(image, label_map)`` pair, all resized to ``size``."""
    cells = []
    for row in rows:
        for image, label_map in row:
            cell = overlay(image, label_map)
            cells.append(
                torch.nn.functional.interpolate(cell[None].float(), size=(size, size), mode="nearest")[0].to(
                    torch.uint8
                )
            )
    return make_grid(cells, nrow=len(rows[0]), padding=2, pad_value=255)
