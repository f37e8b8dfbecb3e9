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
from anaus_pl.models.matmul_precision import fp32_where_bf16_is_emulated
from anaus_pl.models.regions import pool_regions

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

    def __init__(
        self,
        arch: str = "resnet18",
        library: str = "torchvision",
        scales: Sequence[str] = ("c5", "p4", "p3", "p2"),
        fpn_channels: int = 256,
    ) -> None:
        super().__init__()
        scale_sizes(scales, 32)
        self.arch, self.library, self.scales = arch, library, list(scales)
        self.backbone = build_backbone(arch, library)
        self.stage_channels = self._stage_channels()
        levels = sorted(_LEVEL[s] for s in self.scales if s != "c5")
        self.first_level = levels[0] if levels else None
        self.fpn: FeaturePyramidNetwork | None = None
        if self.first_level is not None:
            self.fpn = FeaturePyramidNetwork(self.stage_channels[self.first_level :], fpn_channels)
            for level in range(self.first_level, 4):
                if level not in levels:
                    self.fpn.layer_blocks[level - self.first_level] = nn.Identity()
        self.out_channels = {s: (self.stage_channels[3] if s == "c5" else fpn_channels) for s in self.scales}

    def _stage_channels(self) -> list[int]:
        if self.library == "timm":
            return [info["num_chs"] for info in self.backbone.feature_info[-4:]]
        return [
            layer[-1].conv3.out_channels if hasattr(layer[-1], "conv3") else layer[-1].conv2.out_channels
            for layer in (self.backbone.layer1, self.backbone.layer2, self.backbone.layer3, self.backbone.layer4)
        ]

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

        ``weights`` are :func:`~anaus_pl.models.regions.region_weights` per scale. Only the
        backbone runs at full resolution; the FPN is applied to pooled vectors
        (:meth:`_pooled_pyramid`): the same values without the pyramid's full-size maps.
        """
        return self.pool_stages(self.stages(x), weights)

    @fp32_where_bf16_is_emulated
    def pool_stages(self, c: list[torch.Tensor], weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Region features ``{scale: (B, K, C_s)}`` from the backbone's stage outputs ``c`` (see :meth:`pooled`)."""
        out = {"c5": pool_regions(c[3], weights["c5"])} if "c5" in weights else {}
        fpn_weights = {s: w for s, w in weights.items() if s != "c5"}
        if fpn_weights:
            out.update(self._pooled_pyramid(c, fpn_weights))
        return {s: out[s] for s in weights}

    def _pooled_pyramid(self, c: list[torch.Tensor], weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Pooled FPN outputs with the pyramid's full-resolution work moved after the pooling.

        The FPN output at level l is ``P_l = O_l * M_l`` with ``M_l = L_l c_l + b_l + U M_{l+1}``
        (1x1 lateral ``L_l``, nearest 2x upsampling ``U``, 3x3 output conv ``O_l``). Pooling is
        linear, so for a mask ``v``: ``<v, P_l> = sum_t O_l,t <S_t v, M_l> + o_l sum(v)``
        (``S_t``: the mask shifted by the flipped tap ``t``) and ``<v, M_l> = L_l <v, c_l> +
        b_l sum(v) + <D v, M_{l+1}>``, where ``D = U^T`` sums 2x2 cells. The maps ``M`` are
        built whole only at strides 16 and 32 (small); at the finer levels each stage ``c_l``
        is pooled by every shifted mask reaching it (one batched matmul per level) and the
        convolutions act on ``(B, masks, C)`` vectors, never on full-size maps.
        """
        top = max(self.first_level, 2)
        maps: dict[int, torch.Tensor] = {}  # M_l at the coarse levels, built like the FPN does
        for level in range(3, top - 1, -1):
            lateral = self.fpn.get_result_from_inner_blocks(c[level], level - self.first_level)
            maps[level] = (
                lateral
                if level == 3
                else lateral + F.interpolate(maps[level + 1], size=lateral.shape[-2:], mode="nearest")
            )
        neighbourhoods: dict[str, torch.Tensor] = {}  # scale -> (B, K * taps, fpn_channels): <S_t v, M_l>
        fine: list[tuple[str, torch.Tensor]] = []
        for scale in sorted(weights, key=lambda s: _LEVEL[s]):
            level = _LEVEL[scale]
            shifted = self._shifted_masks(scale, weights[scale].to(c[level].dtype), c[level].shape[-2:])
            if level >= top:
                neighbourhoods[scale] = torch.bmm(shifted.flatten(2), maps[level].flatten(2).transpose(1, 2))
            else:
                fine.append((scale, shifted))
        if fine:
            neighbourhoods.update(self._pooled_fine_levels(c, fine, maps[top], top))
        out = {}
        for scale, pooled in neighbourhoods.items():
            conv = self._output_conv(scale)
            if conv is None:
                out[scale] = pooled
                continue
            k = weights[scale].shape[1]
            weight = conv.weight.flip(2, 3).flatten(2).to(pooled.dtype)  # (out, in, taps), flipped to match S_t
            pooled = torch.einsum("bktc,oct->bko", pooled.unflatten(1, (k, -1)), weight)
            out[scale] = (
                pooled
                if conv.bias is None
                else pooled + weights[scale].sum(-1, keepdim=True).to(pooled.dtype) * conv.bias.to(pooled.dtype)
            )
        return out

    def _pooled_fine_levels(
        self, c: list[torch.Tensor], fine: list[tuple[str, torch.Tensor]], top_map: torch.Tensor, top: int
    ) -> dict[str, torch.Tensor]:
        """``<S_t v, M_l>`` for the shifted masks of scales below ``top`` (finest first), without building ``M_l``."""
        grids: list[torch.Tensor] = []  # per level below top, (B, N_l, h_l, w_l): the shifted masks reaching it
        rows: dict[str, tuple[int, int]] = {}
        carried = None
        for level in range(self.first_level, top + 1):
            h, w = c[level].shape[-2:]
            if carried is not None:
                if carried.shape[-2:] != (2 * h, 2 * w):
                    raise ValueError(
                        f"stage sizes {[tuple(t.shape[-2:]) for t in c]} do not halve exactly; use an input size divisible by 32"
                    )
                carried = F.avg_pool2d(carried, 2, divisor_override=1)  # D: the sum of 2x2 cells
            for scale, shifted in fine:
                if _LEVEL[scale] == level:
                    rows[scale] = (0 if carried is None else carried.shape[1], shifted.shape[1])
                    carried = shifted if carried is None else torch.cat([carried, shifted], 1)
            grids.append(carried)
        mass = torch.cat([shifted.sum((-2, -1)) for _, shifted in fine], 1)[..., None]  # D keeps each mask's sum
        merged = torch.bmm(carried.flatten(2), top_map.flatten(2).transpose(1, 2))
        for level in range(top - 1, self.first_level - 1, -1):  # the masks reaching level l are the first N_l rows
            lateral = self._lateral_conv(level)
            grid = grids[level - self.first_level]
            n = grid.shape[1]
            pooled = torch.bmm(grid.flatten(2), c[level].flatten(2).transpose(1, 2))
            term = pooled @ lateral.weight.flatten(1).T.to(pooled.dtype) + mass[:, :n].to(
                pooled.dtype
            ) * lateral.bias.to(pooled.dtype)
            merged = torch.cat([merged[:, :n] + term, merged[:, n:]], 1)
        return {scale: merged[:, first : first + n] for scale, (first, n) in rows.items()}

    def _shifted_masks(self, scale: str, weights: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``(B, K * taps, h, w)``: each region mask shifted by every tap of the scale's output conv (itself if none)."""
        b, k = weights.shape[:2]
        grid = weights.view(b, k, *size)
        conv = self._output_conv(scale)
        return grid if conv is None else F.unfold(grid, conv.kernel_size, padding=conv.padding).view(b, -1, *size)

    def _output_conv(self, scale: str) -> nn.Conv2d | None:
        """The FPN's 3x3 output convolution of a scale (``None`` where the block is an identity)."""
        block = self.fpn.layer_blocks[_LEVEL[scale] - self.first_level]
        return (
            None if isinstance(block, nn.Identity) else self._single_conv(block, f"FPN output block of scale {scale}")
        )

    def _lateral_conv(self, level: int) -> nn.Conv2d:
        """The FPN's 1x1 lateral convolution of backbone stage ``level`` (0 = C2)."""
        conv = self._single_conv(self.fpn.inner_blocks[level - self.first_level], f"FPN lateral block of C{level + 2}")
        if conv.kernel_size != (1, 1) or conv.bias is None:
            raise TypeError(f"{conv} is not the FPN's 1x1 lateral convolution with bias")
        return conv

    @staticmethod
    def _single_conv(block: nn.Module, what: str) -> nn.Conv2d:
        """The block's one convolution, if pooling reproduces it exactly: a plain ``nn.Conv2d``, stride 1,
        undilated, ungrouped, odd-sized, 'same' zero padding. Anything else is refused, never approximated."""
        conv = block[0] if isinstance(block, nn.Sequential) and len(block) == 1 else block
        if not isinstance(conv, nn.Conv2d):
            problem = "is not a single convolution"
        elif type(conv).forward is not nn.Conv2d.forward or type(conv)._conv_forward is not nn.Conv2d._conv_forward:
            problem = "has its own forward"
        elif conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1:
            problem = "is strided, dilated or grouped"
        elif conv.padding_mode != "zeros":
            problem = f"pads with '{conv.padding_mode}'"
        elif conv.padding != tuple((k - 1) // 2 for k in conv.kernel_size) or any(k % 2 == 0 for k in conv.kernel_size):
            problem = "is not 'same'-padded and odd-sized"
        else:
            return conv
        raise TypeError(
            f"{what} ({block}) {problem}: the pooled FPN reproduces only plain 'same' zero-padded stride-1 convolutions"
        )
