"""The online / target network of pretraining: encoder + FPN + per-scale projector applied to regions."""

from __future__ import annotations

import torch
from torch import nn

from anaus_pl.models.encoders import MultiScaleEncoder
from anaus_pl.models.heads import ScaleHeads
from anaus_pl.models.regions import region_weights

Regions = dict[str, tuple[torch.Tensor, torch.Tensor]]  # scale -> (fractions (B, R, s, s), ids (B, K))


class RegionEmbedder(nn.Module):
    """Encoder + FPN + per-scale projector: images and regions -> ``{scale: (B, K, D)}``.

    The K slots are drawn with replacement, so with fewer ids than slots (R < K, the usual
    case: a handful of anatomy classes, K = 16) every id is pooled once and each slot takes
    its id's row: the same values as pooling slot by slot, for R / K of the FPN pooling work.
    """

    def __init__(self, encoder: MultiScaleEncoder, projectors: ScaleHeads) -> None:
        super().__init__()
        self.encoder, self.projectors = encoder, projectors

    def forward(self, images: torch.Tensor, regions: Regions) -> dict[str, torch.Tensor]:
        per_id = {s: fractions.shape[1] < ids.shape[1] for s, (fractions, ids) in regions.items()}
        weights = {
            s: region_weights(fractions, _every_id(fractions) if per_id[s] else ids)
            for s, (fractions, ids) in regions.items()
        }
        pooled = self.encoder.pooled(images, weights)
        return {s: self.projectors(s, _rows_of(pooled[s], regions[s][1]) if per_id[s] else pooled[s]) for s in regions}


def _every_id(fractions: torch.Tensor) -> torch.Tensor:
    """``(B, R)``: the ids 0..R-1 of ``fractions (B, R, s, s)`` for every image."""
    b, r = fractions.shape[:2]
    return torch.arange(r, device=fractions.device).expand(b, r)


def _rows_of(per_id: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``(B, K, C)``: for each slot, the row of its id in ``per_id (B, R, C)``."""
    return torch.gather(per_id, 1, ids[..., None].expand(-1, -1, per_id.shape[-1]))
