"""The online / target network of pretraining: encoder + FPN + per-scale projector applied to regions."""

from __future__ import annotations

import torch
from torch import nn

from anaus_pl.models.encoders import MultiScaleEncoder
from anaus_pl.models.heads import ScaleHeads
from anaus_pl.models.regions import region_weights

Regions = dict[str, tuple[torch.Tensor, torch.Tensor]]  # scale -> (fractions (B, R, s, s), ids (B, K))


class RegionEmbedder(nn.Module):
    """Encoder + FPN + per-scale projector: images and regions -> ``{scale: (B, K, D)}``."""

    def __init__(self, encoder: MultiScaleEncoder, projectors: ScaleHeads) -> None:
        super().__init__()
        self.encoder, self.projectors = encoder, projectors

    def forward(self, images: torch.Tensor, regions: Regions) -> dict[str, torch.Tensor]:
        pooled = self.encoder.pooled(images, {s: region_weights(*regions[s]) for s in regions})
        return {s: self.projectors(s, pooled[s]) for s in regions}
