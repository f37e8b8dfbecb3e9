"""The one input normalisation: grayscale (or RGB) images in [0, 1] -> normalised 3-channel network input."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# ImageNet statistics; segment-anything's pixel mean/std (123.675, 116.28, 103.53) / (58.395, 57.12, 57.375) are
# these times 255 (equal in float32).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class InputNormalization(nn.Module):
    """``(x - mean) / std`` per channel of ``(B, 1 or 3, H, W)`` images in [0, 1]; one channel is repeated to three.

    ``mean`` and ``std`` are non-persistent buffers: they follow the module's device and dtype but are not
    part of its state dict (they come from the model's configuration, e.g. ``encoder.json``).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 values each (std > 0), got mean {tuple(mean)} and std {tuple(std)}")
        self.register_buffer("mean", torch.tensor(tuple(mean)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(tuple(std)).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected (B, 1 or 3, H, W) images in [0, 1], got {tuple(images.shape)}")
        return (images.expand(-1, 3, -1, -1) - self.mean) / self.std
