"""The online / target network of pretraining: encoder + FPN + per-scale projector applied to regions."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from anaus_pl.models.encoders import MultiScaleEncoder
from anaus_pl.models.heads import ScaleHeads
from anaus_pl.models.regions import region_weights

Regions = dict[str, tuple[torch.Tensor, torch.Tensor]]  # scale -> (fractions (B, R, s, s), ids (B, K))


class SlotRows(NamedTuple):
    """Embeddings of a batch's K region slots per image, kept as rows: slot k of image b is ``rows[index[b, k]]``."""

    rows: torch.Tensor  # (N, D)
    index: torch.Tensor  # (B, K)

    def slots(self) -> torch.Tensor:
        """``(B, K, D)``: every slot's embedding."""
        return self.rows.index_select(0, self.index.flatten()).view(*self.index.shape, -1)

    def through(self, heads: ScaleHeads, scale: str) -> SlotRows:
        """The scale's head applied to every slot (computed once per row)."""
        return SlotRows(heads(scale, self.rows, self.index.flatten()), self.index)


class RegionEmbedder(nn.Module):
    """Encoder + FPN + per-scale projector: images and regions -> ``{scale: SlotRows}``.

    The K slots are drawn with replacement, so with fewer ids than slots (R < K, the usual
    case: a handful of anatomy classes, K = 16) every id is pooled once and projected once, and
    each slot names its id's row: the same values as slot by slot, for R / K of the FPN pooling
    and projector matmul work (the projector's batch norm still sees one row per slot).
    """

    def __init__(self, encoder: MultiScaleEncoder, projectors: ScaleHeads) -> None:
        super().__init__()
        self.encoder, self.projectors = encoder, projectors

    def forward(self, images: torch.Tensor, regions: Regions) -> dict[str, SlotRows]:
        per_id = {s: fractions.shape[1] < ids.shape[1] for s, (fractions, ids) in regions.items()}
        weights = {
            s: region_weights(fractions, _every_id(fractions) if per_id[s] else ids)
            for s, (fractions, ids) in regions.items()
        }
        pooled = self.encoder.pooled(images, weights)
        out = {}
        for s, (_, ids) in regions.items():
            b, rows_per_image = pooled[s].shape[:2]  # R ids or K slots per image
            index = (
                ids + rows_per_image * torch.arange(b, device=ids.device)[:, None]
                if per_id[s]
                else torch.arange(b * rows_per_image, device=ids.device).view(b, rows_per_image)
            )
            out[s] = SlotRows(pooled[s].flatten(0, 1), index).through(self.projectors, s)
        return out


def _every_id(fractions: torch.Tensor) -> torch.Tensor:
    """``(B, R)``: the ids 0..R-1 of ``fractions (B, R, s, s)`` for every image."""
    b, r = fractions.shape[:2]
    return torch.arange(r, device=fractions.device).expand(b, r)
