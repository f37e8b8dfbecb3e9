"""SSL heads: the projector g_s and predictor q_s MLPs (BYOL / DetCon-B design)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class MLP(nn.Sequential):
    """Linear -> BatchNorm1d -> ReLU -> Linear on the last dimension (any leading shape)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leading = x.shape[:-1]
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(*leading, -1)


class ScaleHeads(nn.Module):
    """One MLP per scale, or one shared MLP per input width when ``shared``.

    Sharing reproduces the released code (one projector for the 256-channel FPN
    levels, one predictor for all scales); the paper's figure draws one per scale.
    """

    def __init__(self, in_dims: Mapping[str, int], hidden_dim: int, out_dim: int, shared: bool = False) -> None:
        super().__init__()
        self.key_of = {scale: (f"width{dim}" if shared else scale) for scale, dim in in_dims.items()}
        self.mlps = nn.ModuleDict()
        for scale, dim in in_dims.items():
            if self.key_of[scale] not in self.mlps:
                self.mlps[self.key_of[scale]] = MLP(dim, hidden_dim, out_dim)

    def forward(self, scale: str, x: torch.Tensor) -> torch.Tensor:
        return self.mlps[self.key_of[scale]](x)
