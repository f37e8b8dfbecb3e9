"""Backbone + FPN giving the "hierarchical hidden vector" scales in one backbone pass.

Scale names: ``c5`` (raw last stage, stride 32) and the FPN outputs ``p5``,
``p4``, ``p3``, ``p2`` (strides 32, 16, 8, 4; 256 channels). The paper's four
scales are ``c5, p4, p3, p2`` = 7, 14, 28, 56 cells at 224 px; they follow the input size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import FeaturePyramidNetwork

from anaus_pl.models.export import build_backbone
from anaus_pl.models.regions import pool_regions, pool_regions_through_conv

STRIDES = {"c5": 32, "p5": 32, "p4": 16, "p3": 8, "p2": 4}
_LEVEL = {"p2": 0, "p3": 1, "p4": 2, "p5": 3}


def scale_sizes(scales: Sequence[str], image_size: int) -> dict[str, int]:
    """Feature-map side of each scale for a square input of ``image_size`` pixels."""
    unknown = [s for s in scales if s not in STRIDES]
    if unknown:
        raise ValueError(f"unknown scales {unknown}; choose from {sorted(STRIDES)}")
    if image_size % 32:
        raise ValueError(f"image_size {image_size} must be a multiple of 32 (the backbone's stride)")
    return {s: image_size // STRIDES[s] for s in scales}


class MultiScaleEncoder(nn.Module):
    """A torchvision ResNet or a timm CNN plus a torchvision FPN on its last four stages.

    ``backbone`` is the exportable classifier-free model (see
    :mod:`anaus_pl.models.export`). The FPN spans the stages from the finest
    requested ``p`` level to the last; an FPN output that no scale uses is an
    identity, so every parameter receives a gradient (DDP needs no unused-parameter search).
    """

    def __init__(self, arch: str = "resnet18", library: str = "torchvision", scales: Sequence[str] = ("c5", "p4", "p3", "p2"), fpn_channels: int = 256) -> None:
        super().__init__()
        scale_sizes(scales, 32)
        self.arch, self.library, self.scales = arch, library, list(scales)
        self.backbone = build_backbone(arch, library)
        self.stage_channels = self._stage_channels()
        levels = sorted(_LEVEL[s] for s in self.scales if s != "c5")
        self.first_level = levels[0] if levels else None
        self.fpn: FeaturePyramidNetwork | None = None
        if self.first_level is not None:
            self.fpn = FeaturePyramidNetwork(self.stage_channels[self.first_level:], fpn_channels)
            for level in range(self.first_level, 4):
                if level not in levels:
                    self.fpn.layer_blocks[level - self.first_level] = nn.Identity()
        self.out_channels = {s: (self.stage_channels[3] if s == "c5" else fpn_channels) for s in self.scales}

    def _stage_channels(self) -> list[int]:
        if self.library == "timm":
            return [info["num_chs"] for info in self.backbone.feature_info[-4:]]
        return [layer[-1].conv3.out_channels if hasattr(layer[-1], "conv3") else layer[-1].conv2.out_channels
                for layer in (self.backbone.layer1, self.backbone.layer2, self.backbone.layer3, self.backbone.layer4)]

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stage outputs C2..C5 of one backbone pass."""
        if self.library == "timm":
            n = len(self.backbone.feature_info)
            return self.backbone.forward_intermediates(x, indices=list(range(n - 4, n)), intermediates_only=True)
        m = self.backbone
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        c2 = m.layer1(x)
        c3 = m.layer2(c2)
        c4 = m.layer3(c3)
        return [c2, c3, c4, m.layer4(c4)]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x (B, 3, S, S)`` normalised -> ``{scale: (B, C_s, S/stride, S/stride)}``."""
        c = self.stages(x)
        out: dict[str, torch.Tensor] = {}
        if self.fpn is not None:
            pyramid = self.fpn(OrderedDict((f"p{i + 2}", c[i]) for i in range(self.first_level, 4)))
            out.update({s: pyramid[s] for s in self.scales if s != "c5"})
        if "c5" in self.scales:
            out["c5"] = c[3]
        return {s: out[s] for s in self.scales}

    def pooled(self, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Region features ``{scale: (B, K, C_s)}`` = ``pool_regions(forward(x)[scale], weights[scale])``.

        ``weights`` are :func:`~anaus_pl.models.regions.region_weights` per scale. The FPN's
        3x3 output convolutions are applied to the pooled neighbourhoods of their inputs
        (:func:`~anaus_pl.models.regions.pool_regions_through_conv`) rather than to whole
        feature maps: the same values, with the pyramid's largest cost removed.
        """
        c = self.stages(x)
        inner = self._fpn_inner(c) if self.fpn is not None else {}
        out = {}
        for scale, w in weights.items():
            if scale == "c5":
                out[scale] = pool_regions(c[3], w)
                continue
            level = _LEVEL[scale] - self.first_level
            block = self.fpn.layer_blocks[level]
            conv = block[0] if isinstance(block, nn.Sequential) and len(block) == 1 else block
            if isinstance(conv, nn.Identity):
                out[scale] = pool_regions(inner[level], w)
            elif isinstance(conv, nn.Conv2d):
                out[scale] = pool_regions_through_conv(conv, inner[level], w)
            else:
                raise TypeError(f"FPN output block {block} of scale {scale} is not a single convolution")
        return out

    def _fpn_inner(self, c: list[torch.Tensor]) -> list[torch.Tensor]:
        """The FPN's merged maps before their output convolutions (lateral + upsampled coarser), finest first."""
        stages = c[self.first_level:]
        merged = self.fpn.get_result_from_inner_blocks(stages[-1], -1)
        inner = [merged]
        for idx in range(len(stages) - 2, -1, -1):
            lateral = self.fpn.get_result_from_inner_blocks(stages[idx], idx)
            merged = lateral + F.interpolate(merged, size=lateral.shape[-2:], mode="nearest")
            inner.insert(0, merged)
        return inner
