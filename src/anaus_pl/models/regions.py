"""Regions of a label map at a feature scale: area fractions, K-of-them sampling, mask-average pooling."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Weighting = Literal["area", "uniform"]


def region_fractions(label_map: torch.Tensor, num_ids: int, size: int) -> torch.Tensor:
    """Area fraction of each region id in each cell of a ``size x size`` grid.

    ``label_map`` is ``(B, H, W)`` integer; returns ``(B, num_ids, size, size)``
    whose values over ids sum to 1 in every cell: the adaptive average pooling of the
    one-hot map. When ``size`` divides ``H`` and ``W`` (every scale of a square input
    whose side is a multiple of 32) the cells do not overlap and the fractions are pixel
    counts, taken with one ``bincount`` instead of building the ``num_ids``-channel one-hot.
    """
    b, h, w = label_map.shape
    if h % size or w % size:
        one_hot = F.one_hot(label_map.long(), num_ids).permute(0, 3, 1, 2).to(torch.float32)
        return F.adaptive_avg_pool2d(one_hot, size)
    rows = torch.arange(h, device=label_map.device) // (h // size)
    cols = torch.arange(w, device=label_map.device) // (w // size)
    cell = rows[:, None] * size + cols[None, :]
    image = torch.arange(b, device=label_map.device)[:, None, None]
    index = (image * num_ids + label_map.long()) * size**2 + cell
    counts = torch.bincount(index.flatten(), minlength=b * num_ids * size**2)
    return counts.view(b, num_ids, size, size).to(torch.float32) / ((h // size) * (w // size))


def region_areas(label_map: torch.Tensor, num_ids: int) -> torch.Tensor:
    """Fraction of the image each region id covers, ``(B, num_ids)``."""
    b = label_map.shape[0]
    image = torch.arange(b, device=label_map.device)[:, None]
    counts = torch.bincount((image * num_ids + label_map.long().flatten(1)).flatten(), minlength=b * num_ids)
    return counts.view(b, num_ids).to(torch.float32) / label_map[0].numel()


def sample_region_ids(
    areas_a: torch.Tensor,
    areas_b: torch.Tensor,
    k: int,
    weighting: Weighting = "area",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``k`` region ids per image (with replacement) among the ids present in both views.

    The probability of an id is proportional to its mean area over the two views
    (``area``, the paper) or uniform over the ids present (``uniform``, the released code).
    Returns ``ids (B, k)`` and ``valid (B, k)``; an image with no id in common
    (impossible when the views overlap) gets id 0 and ``valid = False``.
    """
    present = (areas_a > 0) & (areas_b > 0)
    if weighting == "area":
        weights = (areas_a + areas_b) * present
    elif weighting == "uniform":
        weights = present.to(areas_a.dtype)
    else:
        raise ValueError(f"region weighting must be 'area' or 'uniform', got {weighting!r}")
    usable = present.any(1)
    weights = torch.where(usable[:, None], weights, torch.ones_like(weights))
    ids = torch.multinomial(weights, k, replacement=True, generator=generator)
    valid = usable[:, None].expand_as(ids)
    return torch.where(valid, ids, torch.zeros_like(ids)), valid


def region_weights(fractions: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Normalised pooling weights of the sampled regions, ``(B, K, s*s)``.

    ``fractions (B, R, s, s)`` from :func:`region_fractions`, ``ids (B, K)``; row ``(b, k)``
    is ``a_{m_{b,k}} / max(sum_cells a_{m_{b,k}}, eps)`` (zero for a region absent at this scale).
    """
    masks = torch.gather(
        fractions.flatten(2), 1, ids[:, :, None].expand(-1, -1, fractions.shape[-2] * fractions.shape[-1])
    )
    return masks / masks.sum(-1, keepdim=True).clamp_min(1e-6)


def pool_regions(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mask-average pooling: ``features (B, C, s, s)``, ``weights (B, K, s*s)`` -> ``(B, K, C)``.

    ``h_{b,k} = sum_cells w_{b,k} f`` with the weights of :func:`region_weights`.
    """
    if features.shape[-2] * features.shape[-1] != weights.shape[-1]:
        raise ValueError(f"features {tuple(features.shape)} do not match region weights {tuple(weights.shape)} in size")
    return torch.einsum("bkn,bcn->bkc", weights.to(features.dtype), features.flatten(2))


def distinct_per_row(ids: torch.Tensor) -> torch.Tensor:
    """Number of distinct ids in each row of ``(B, K)``."""
    ordered = ids.sort(dim=1).values
    return 1 + (ordered[:, 1:] != ordered[:, :-1]).sum(1)
