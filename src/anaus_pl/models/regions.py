"""Regions of a label map at a feature scale: area fractions, K-of-them sampling, mask-average pooling."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Weighting = Literal["area", "uniform"]


def region_fractions(label_map: torch.Tensor, num_ids: int, size: int) -> torch.Tensor:
    """Area fraction of each region id in each cell of a ``size x size`` grid.

    ``label_map`` is ``(B, H, W)`` integer; returns ``(B, num_ids, size, size)``
    whose values over ids sum to 1 in every cell (adaptive average pooling of the one-hot map).
    """
    one_hot = F.one_hot(label_map.long(), num_ids).permute(0, 3, 1, 2).to(torch.float32)
    return F.adaptive_avg_pool2d(one_hot, size)


def region_areas(label_map: torch.Tensor, num_ids: int) -> torch.Tensor:
    """Fraction of the image each region id covers, ``(B, num_ids)``."""
    return F.one_hot(label_map.long().flatten(1), num_ids).to(torch.float32).mean(1)


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
    masks = torch.gather(fractions.flatten(2), 1, ids[:, :, None].expand(-1, -1, fractions.shape[-2] * fractions.shape[-1]))
    return masks / masks.sum(-1, keepdim=True).clamp_min(1e-6)


def pool_regions(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mask-average pooling: ``features (B, C, s, s)``, ``weights (B, K, s*s)`` -> ``(B, K, C)``.

    ``h_{b,k} = sum_cells w_{b,k} f`` with the weights of :func:`region_weights`.
    """
    if features.shape[-2] * features.shape[-1] != weights.shape[-1]:
        raise ValueError(f"features {tuple(features.shape)} do not match region weights {tuple(weights.shape)} in size")
    return torch.einsum("bkn,bcn->bkc", weights.to(features.dtype), features.flatten(2))


def pool_regions_through_conv(conv: nn.Conv2d, features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``pool_regions(conv(features), weights)`` without computing ``conv(features)``.

    Pooling is linear, so pooling a "same"-padded stride-1 convolution's output equals the
    convolution's weights applied to the pooled kernel neighbourhoods:
    ``sum_n w_n (W * f)_n = sum_t W_t sum_n w_{n - t} f_n + b sum_n w_n``. The shifted masks
    cost ``K * taps`` poolings instead of a full-resolution convolution (16x fewer
    multiply-adds for the 3x3, 256-channel FPN output at 56 x 56 cells with K = 16).
    Any other convolution (stride, dilation, groups, non-zero padding mode, even kernel,
    a subclass with its own forward) is refused: the identity would not hold exactly.
    """
    kh, kw = conv.kernel_size
    same = conv.padding == ((kh - 1) // 2, (kw - 1) // 2) and kh % 2 == 1 and kw % 2 == 1
    own_forward = type(conv).forward is not nn.Conv2d.forward or type(conv)._conv_forward is not nn.Conv2d._conv_forward
    if (own_forward or conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1
            or conv.padding_mode != "zeros" or not same):
        raise ValueError(f"{conv} is not a plain 'same' zero-padded stride-1 undilated ungrouped nn.Conv2d, "
                         "which the pooled shortcut reproduces exactly; pool its output instead")
    b, k, _ = weights.shape
    h, w = features.shape[-2:]
    # unfold row (k, i, j) at cell n holds w_k at n + (i, j) - padding: the mask shifted by the flipped tap.
    shifted = F.unfold(weights.view(b, k, h, w).to(features.dtype), (kh, kw), padding=conv.padding)
    neighbourhoods = torch.bmm(shifted.view(b, k * kh * kw, h * w), features.flatten(2).transpose(1, 2))
    neighbourhoods = neighbourhoods.view(b, k, kh, kw, -1).flip(2, 3)
    pooled = torch.einsum("bkijc,ocij->bko", neighbourhoods, conv.weight.to(features.dtype))
    if conv.bias is not None:
        pooled = pooled + weights.sum(-1, keepdim=True).to(pooled.dtype) * conv.bias.to(pooled.dtype)
    return pooled


def distinct_per_row(ids: torch.Tensor) -> torch.Tensor:
    """Number of distinct ids in each row of ``(B, K)``."""
    ordered = ids.sort(dim=1).values
    return 1 + (ordered[:, 1:] != ordered[:, :-1]).sum(1)
