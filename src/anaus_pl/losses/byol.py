"""BYOL's loss: each view's online prediction regresses the other view's target, no negatives.

With ``p^v`` the online predictions and ``t^v`` the stop-gradient target projections of view
``v`` (``(B, K, D)``: one slot per region, or ``K = 1`` for whole images)::

    L_byol = mean_valid || p^1/||p^1|| - t^2/||t^2|| ||^2 + mean_valid || p^2/||p^2|| - t^1/||t^1|| ||^2
           = mean_valid (2 - 2 cos(p^1, t^2)) + mean_valid (2 - 2 cos(p^2, t^1))

(Grill et al. 2020, eq. 2, symmetrised). The normalised MSE of one direction is
:func:`~anaus_pl.losses.core_region.core_region_loss` with ``kind="normalized"``.
"""

from __future__ import annotations

import torch

from anaus_pl.losses.core_region import core_region_loss


def byol_loss(
    online_1: torch.Tensor,
    online_2: torch.Tensor,
    target_1: torch.Tensor,
    target_2: torch.Tensor,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric normalised-MSE regression of ``(B, K, D)`` predictions onto the other view's targets."""
    return core_region_loss(online_1, target_2, valid, "normalized") + core_region_loss(
        online_2, target_1, valid, "normalized"
    )
