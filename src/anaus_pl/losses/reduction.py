"""The masked mean every loss reduces with."""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``sum(v m) / max(sum(m), 1)``: the mean of ``values`` where ``mask`` (0/1 or weights, same shape) counts.

    Without a mask, the plain mean; when nothing counts, 0 (a batch with no valid entry adds no loss).
    """
    if mask is None:
        return values.mean()
    weight = mask.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)
