"""SSL heads: the projector g_s and predictor q_s MLPs (BYOL / DetCon-B design)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from anaus_pl.models.matmul_precision import fp32_where_bf16_is_emulated


class MLP(nn.Sequential):
    """Linear -> BatchNorm1d -> ReLU -> Linear on the last dimension (any leading shape).

    With ``slot_rows`` the input holds distinct rows and ``slot_rows (M,)`` names the row of each
    of M slots, several slots sharing a row: the output rows equal those of the MLP applied to the
    M slot rows ``x[slot_rows]``, batch-norm statistics included, but both linear layers act on the
    distinct rows only. Batch norm and ReLU act row by row once the statistics are known, so the
    slots of a row stay equal after them, and each row takes its normalised value from one of its
    slots (the gradient a row receives then reaches batch norm through that slot: the same
    parameter gradients, as batch norm's backward depends on a row's slots only through their sum).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: torch.Tensor, slot_rows: torch.Tensor | None = None) -> torch.Tensor:
        if slot_rows is None:
            leading = x.shape[:-1]
            return super().forward(x.reshape(-1, x.shape[-1])).reshape(*leading, -1)
        linear_in, norm, relu, linear_out = self
        hidden = norm(linear_in(x).index_select(0, slot_rows))  # statistics over the M slots
        return linear_out(relu(hidden.index_select(0, one_slot_per_row(slot_rows, x.shape[0]))))


def one_slot_per_row(slot_rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    """``(num_rows,)``: for each row, the last slot of ``slot_rows (M,)`` naming it (slot 0 for a row with none).

    A row no slot names reaches no output, so the slot it borrows gets no gradient through it.
    """
    slots = torch.arange(slot_rows.numel(), device=slot_rows.device)
    return torch.zeros(num_rows, dtype=torch.long, device=slot_rows.device).scatter_reduce_(0, slot_rows, slots, "amax")


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

    @fp32_where_bf16_is_emulated
    def forward(self, scale: str, x: torch.Tensor, slot_rows: torch.Tensor | None = None) -> torch.Tensor:
        """The scale's MLP on ``x`` (see :class:`MLP` for ``slot_rows``)."""
        return self.mlps[self.key_of[scale]](x, slot_rows)
