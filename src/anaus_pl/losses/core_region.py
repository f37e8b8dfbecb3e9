"""Contextual core-region prediction: predict the target embedding of the clean core from a corrupted one.

For one scale, with ``p_{b,k} = q_s(g_s(pool(f(corrupt(v_c)), M_{b,k})))`` (online,
core cut from view 1 and corrupted) and ``t_{b,k} = g'_s(pool(f'(v_c'), M'_{b,k}))``
(target, clean core cut from view 2, stop-gradient) over the **same** region ids:

``normalized`` (default, the paper's squared L2 norm on the unit sphere, as BYOL)::

    L_core = mean_{(b,k) valid} || p_{b,k}/||p_{b,k}|| - t_{b,k}/||t_{b,k}|| ||^2
           = mean_{(b,k) valid} (2 - 2 cos(p_{b,k}, t_{b,k}))

``mse`` (the released code's choice: unnormalised embeddings)::

    L_core = mean_{(b,k) valid} mean_d (p_{b,k,d} - t_{b,k,d})^2
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from anaus_pl.losses.reduction import masked_mean

CoreLossKind = Literal["normalized", "mse"]


def core_region_loss(
    online: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    kind: CoreLossKind = "normalized",
) -> torch.Tensor:
    """Core-region prediction loss of one scale for ``(B, K, D)`` online predictions and targets."""
    target = target.detach()
    if kind == "normalized":
        per_region = (F.normalize(online, dim=-1) - F.normalize(target, dim=-1)).pow(2).sum(-1)
    elif kind == "mse":
        per_region = (online - target).pow(2).mean(-1)
    else:
        raise ValueError(f"core loss kind must be 'normalized' or 'mse', got {kind!r}")
    return masked_mean(per_region, valid)
