"""The class-conditioned latent prompt engine: learned prompts instead of clicks and boxes.

Each anatomy class owns ``tokens_per_class`` learnable latent prompt tokens. A
light CNN patch encoder embeds the image onto the image embedding's grid; in
each of ``rounds`` rounds (paper: N = 4) the image embedding is fused with the
patch embedding and the latent tokens of *all* classes exchange information
with it through segment-anything's two-way attention block (token
self-attention, token-to-image and image-to-token cross-attention). The
output is one set of sparse prompt embeddings per class and one dense prompt
per class (SAM's no-mask embedding plus a learnable per-class embedding, so the
decoder's image tokens themselves know which structure is asked for), which
SAM's mask decoder turns into that class's mask. Because every class's tokens attend to
each other, classes compete for pixels instead of being predicted blind.
"""

from __future__ import annotations

import torch
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.transformer import TwoWayAttentionBlock
from torch import nn


class PatchEncoder(nn.Module):
    """Strided 3x3 convolutions from the image to a ``(B, dim, S/stride, S/stride)`` map."""

    def __init__(self, dim: int, stride: int, width: int = 32) -> None:
        super().__init__()
        if stride < 1 or stride & (stride - 1):
            raise ValueError(f"patch encoder stride must be a power of two, got {stride}")
        layers, channels = [], 3
        for level in range(max(1, stride.bit_length() - 1)):
            out = min(width * 2**level, dim)
            step = 2 if 2 ** (level + 1) <= stride else 1
            layers += [nn.Conv2d(channels, out, 3, step, 1, bias=False), LayerNorm2d(out), nn.GELU()]
            channels = out
        layers.append(nn.Conv2d(channels, dim, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)


class LatentPromptEngine(nn.Module):
    """Per-class latent prompt tokens refined against the image: ``(B, C, T, dim)`` sparse prompts."""

    def __init__(
        self,
        num_classes: int,
        dim: int,
        grid_stride: int,
        tokens_per_class: int = 2,
        rounds: int = 4,
        num_heads: int = 8,
        mlp_dim: int = 1024,
        patch_width: int = 32,
    ) -> None:
        super().__init__()
        if rounds < 1:
            raise ValueError(f"the prompt engine needs at least one round, got {rounds}")
        self.num_classes, self.tokens_per_class = num_classes, tokens_per_class
        # N(0, 1) as nn.Embedding (SAM's prompt tokens): classes must start apart to specialise quickly
        self.latent_tokens = nn.Parameter(torch.randn(num_classes * tokens_per_class, dim))
        self.patch_encoder = PatchEncoder(dim, grid_stride, patch_width)
        self.fuse = nn.ModuleList(nn.Linear(dim, dim) for _ in range(rounds))
        self.fuse_norm = nn.ModuleList(nn.LayerNorm(dim) for _ in range(rounds))
        self.rounds = nn.ModuleList(
            TwoWayAttentionBlock(dim, num_heads, mlp_dim, activation=nn.GELU, skip_first_layer_pe=False)
            for _ in range(rounds)
        )
        self.out_norm = nn.LayerNorm(dim)
        # added to SAM's no-mask embedding (N(0, 1) like it): a direct class signal on every image token
        self.class_dense = nn.Parameter(torch.randn(num_classes, dim))

    def forward(self, image: torch.Tensor, image_embedding: torch.Tensor, image_pe: torch.Tensor) -> torch.Tensor:
        """Sparse prompts ``(B, C, T, dim)`` from the normalised image, its embedding ``(B, dim, h, w)`` and PE."""
        b = image_embedding.shape[0]
        patches = self.patch_encoder(image).flatten(2).transpose(1, 2)
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2).expand(b, -1, -1)
        query_pe = self.latent_tokens.unsqueeze(0).expand(b, -1, -1)
        queries = query_pe
        for fuse, norm, block in zip(self.fuse, self.fuse_norm, self.rounds):
            keys = norm(keys + fuse(patches))
            queries, keys = block(queries, keys, query_pe, key_pe)
        return self.out_norm(queries).view(b, self.num_classes, self.tokens_per_class, -1)

    def dense_prompts(self, no_mask_embedding: torch.Tensor) -> torch.Tensor:
        """Per-class dense prompt vectors ``(C, dim)``: SAM's no-mask embedding ``(dim,)`` plus the class's own."""
        return no_mask_embedding.view(1, -1) + self.class_dense
