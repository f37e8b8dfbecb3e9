"""Adapters that specialise a frozen SAM image encoder to ultrasound.

* :class:`BottleneckAdapter`: ``x + up(GELU(down(x)))`` after each encoder
  block, ``up`` zero-initialised so that an un-adapted LP-SAM computes exactly
  what SAM computes.
* :class:`CNNBranch` (optional, after SAMUS): a light convolutional path on
  the image whose features are added to the ViT tokens at the input and before
  the neck through zero-initialised projections. It gives the encoder the
  local, high-frequency cues (speckle, thin boundaries) that 16 px patches
  blur, and is what makes a from-scratch small ViT learn quickly on CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from segment_anything.modeling.common import LayerNorm2d
from torch import nn


class BottleneckAdapter(nn.Module):
    """Residual bottleneck MLP on the channel (last) dimension; identity at initialisation."""

    def __init__(self, dim: int, ratio: float = 0.25) -> None:
        super().__init__()
        hidden = max(1, int(dim * ratio))
        self.down = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


def _conv_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), LayerNorm2d(cout), nn.GELU())


class CNNBranch(nn.Module):
    """Strided convolutions from the image to the encoder's token grid, two zero-initialised taps."""

    def __init__(self, dim: int, stride: int, width: int = 32) -> None:
        super().__init__()
        if stride < 2 or stride & (stride - 1):
            raise ValueError(f"CNN branch stride must be a power of two >= 2, got {stride}")
        layers, channels = [], 3
        for level in range(stride.bit_length() - 1):
            out = min(width * 2**level, 4 * width)
            layers.append(_conv_block(channels, out, 2))
            channels = out
        self.features = nn.Sequential(*layers, _conv_block(channels, channels, 1))
        self.to_input = nn.Conv2d(channels, dim, 1)
        self.to_output = nn.Conv2d(channels, dim, 1)
        for tap in (self.to_input, self.to_output):
            nn.init.zeros_(tap.weight)
            nn.init.zeros_(tap.bias)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Channels-last ``(B, H, W, dim)`` additions for the encoder's input and output tokens."""
        features = self.features(image)
        return self.to_input(features).permute(0, 2, 3, 1), self.to_output(features).permute(0, 2, 3, 1)


class EncoderAdapters(nn.Module):
    """All adapters of one encoder: one bottleneck per block, optional CNN branch."""

    def __init__(
        self,
        block_dims: Sequence[int],
        ratio: float = 0.25,
        cnn_branch: bool = False,
        token_dim: int | None = None,
        token_stride: int = 16,
        cnn_width: int = 32,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(BottleneckAdapter(dim, ratio) for dim in block_dims)
        self.cnn = CNNBranch(token_dim or block_dims[0], token_stride, cnn_width) if cnn_branch else None

    def after_block(self, index: int, tokens: torch.Tensor) -> torch.Tensor:
        return self.blocks[index](tokens)
