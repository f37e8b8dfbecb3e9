"""LP-SAM probabilities -> one anatomy label map per frame.

1. A pixel is a candidate for class ``k`` when its probability reaches the
   class threshold and the frame may hold class ``k`` (a frame of an input
   restricted to some classes never gets the others).
2. Overlaps are resolved by the highest probability among the candidates;
   pixels with no candidate are background (0).
3. Pixels outside the frame's valid (unpadded) area are background.
4. Optionally, per class, connected regions smaller than ``min_area`` pixels
   are removed and only the largest region is kept. Removed pixels become
   background; they are not handed to the runner-up class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage


@dataclass
class PostProcess:
    """How probabilities become label maps (all values at the store's letterbox size).

    Args:
        threshold: probability a pixel needs to be labelled; one value, or one per class.
        min_area: connected regions with fewer pixels are removed (0: keep all).
        keep_largest_component: keep only the largest region of each class.
        keep_empty: store frames whose label map is all background (else drop them; counted either way).
    """

    threshold: float | list[float] = 0.5
    min_area: int = 0
    keep_largest_component: bool = False
    keep_empty: bool = True

    def thresholds(self, num_classes: int) -> torch.Tensor:
        values = [self.threshold] * num_classes if isinstance(self.threshold, (int, float)) else list(self.threshold)
        if len(values) != num_classes:
            raise ValueError(
                f"postprocess.threshold has {len(values)} values for {num_classes} classes; give one per class or a single value"
            )
        if not all(0.0 <= v <= 1.0 for v in values):
            raise ValueError(f"postprocess.threshold values must lie in [0, 1], got {values}")
        return torch.tensor(values, dtype=torch.float32)


def resolve_labels(
    probabilities: torch.Tensor, thresholds: torch.Tensor, valid_hw: torch.Tensor, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """Steps 1-3: ``(B, C, S, S)`` probabilities -> ``uint8 (B, S, S)`` label maps (runs on any device).

    ``allowed`` (``bool (B, C)``, optional): the classes each frame may hold; ``None`` allows all.
    """
    b, c, h, w = probabilities.shape
    probabilities = probabilities.float()
    candidate = probabilities >= thresholds.to(probabilities.device).view(1, c, 1, 1)
    if allowed is not None:
        candidate &= allowed.to(device=candidate.device, dtype=torch.bool).view(b, c, 1, 1)
    best = torch.where(candidate, probabilities, torch.full_like(probabilities, -1.0)).argmax(dim=1)
    labels = (best + 1) * candidate.any(dim=1)
    rows = torch.arange(h, device=labels.device).view(1, h, 1)
    cols = torch.arange(w, device=labels.device).view(1, 1, w)
    inside = (rows < valid_hw[:, 0].to(labels.device).view(b, 1, 1)) & (
        cols < valid_hw[:, 1].to(labels.device).view(b, 1, 1)
    )
    return (labels * inside).to(torch.uint8)


def filter_regions(label_map: np.ndarray, num_classes: int, min_area: int, keep_largest: bool) -> np.ndarray:
    """Step 4 on one ``uint8 (S, S)`` label map (returns a new array)."""
    if min_area <= 0 and not keep_largest:
        return label_map
    out = label_map.copy()
    for k in range(1, num_classes + 1):
        regions, count = ndimage.label(label_map == k)
        if count == 0:
            continue
        areas = np.bincount(regions.ravel(), minlength=count + 1)[1:]
        keep = areas >= min_area
        if keep_largest:
            keep &= np.arange(count) == int(np.argmax(areas))
        drop = np.concatenate([[False], ~keep])[regions]
        out[drop] = 0
    return out


def label_maps(
    probabilities: torch.Tensor, valid_hw: torch.Tensor, config: PostProcess, allowed: torch.Tensor | None = None
) -> np.ndarray:
    """All steps: ``(B, C, S, S)`` probabilities -> ``uint8 (B, S, S)`` numpy label maps (``allowed`` as in :func:`resolve_labels`)."""
    num_classes = probabilities.shape[1]
    labels = resolve_labels(probabilities, config.thresholds(num_classes), valid_hw, allowed).cpu().numpy()
    return (
        np.stack([filter_regions(m, num_classes, config.min_area, config.keep_largest_component) for m in labels])
        if len(labels)
        else labels
    )
