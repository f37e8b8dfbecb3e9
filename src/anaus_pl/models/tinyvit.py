"""TinyViT-5M with a SAM neck: the image encoder of LiteMedSAM, torch only.

Module and parameter names follow the ``image_encoder.*`` keys of
``lite_medsam.pth`` so the weights load strictly without renaming. Compared
with TinyViT as published: a 1x1 stride-1 stem (LiteMedSAM), a stride-1 last
patch merging (MobileSAM) and SAM's neck to 256 channels. At 256 px input the
stages run at 256, 128, 64 and 64 px and the embedding is ``(B, 256, 64, 64)``.
An optional per-block hook lets LP-SAM insert adapters after every
transformer block.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from torch import nn

BlockHook = Callable[[int, torch.Tensor], torch.Tensor]


class Conv2d_BN(nn.Sequential):  # noqa: N801 (name fixed by the checkpoint keys ``.c``/``.bn``)
    """Bias-free convolution followed by batch norm."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout))


class PatchEmbed(nn.Module):
    """LiteMedSAM's stem: two 1x1 convolutions at full resolution."""

    def __init__(self, cin: int, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(Conv2d_BN(cin, dim // 2), nn.GELU(), Conv2d_BN(dim // 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block (expand, depthwise 3x3, project)."""

    def __init__(self, dim: int, expand: float) -> None:
        super().__init__()
        hidden = int(dim * expand)
        self.conv1 = Conv2d_BN(dim, hidden)
        self.conv2 = Conv2d_BN(hidden, hidden, 3, groups=hidden)
        self.conv3 = Conv2d_BN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """Downsampling between stages; feature maps in, tokens ``(B, L, C)`` out."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = Conv2d_BN(dim, out_dim)
        self.conv2 = Conv2d_BN(out_dim, out_dim, 3, stride, groups=out_dim)
        self.conv3 = Conv2d_BN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x)))))
        return x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Window self-attention with TinyViT's learned per-offset bias."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads, self.key_dim = num_heads, dim // num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        points = list(itertools.product(range(window), range(window)))
        offsets: dict[tuple[int, int], int] = {}
        index = [offsets.setdefault((abs(a[0] - b[0]), abs(a[1] - b[1])), len(offsets)) for a in points for b in points]
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets)))
        self.register_buffer("bias_index", torch.tensor(index).view(len(points), len(points)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, n, self.num_heads, 3 * self.key_dim).permute(0, 2, 1, 3).chunk(3, -1)
        bias = self.attention_biases[:, self.bias_index].to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class Mlp(nn.Module):
    """Pre-norm two-layer MLP."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Window attention, depthwise local convolution, MLP (tokens ``(B, H*W, C)``)."""

    def __init__(self, dim: int, num_heads: int, window: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window = window
        self.attn = Attention(dim, num_heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2d_BN(dim, dim, 3, groups=dim)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        (h, w), (b, _, c), s = hw, x.shape, self.window
        grid = F.pad(x.view(b, h, w, c), (0, 0, 0, -w % s, 0, -h % s))
        ph, pw = grid.shape[1:3]
        windows = grid.view(b, ph // s, s, pw // s, s, c).transpose(2, 3).reshape(-1, s * s, c)
        attended = self.attn(windows).view(b, ph // s, pw // s, s, s, c).transpose(2, 3).reshape(b, ph, pw, c)
        x = x + attended[:, :h, :w].reshape(b, h * w, c)
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return x + self.mlp(x)


class ConvLayer(nn.Module):
    """Stage 0: MBConv blocks, then patch merging."""

    def __init__(self, dim: int, depth: int, out_dim: int, expand: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand) for _ in range(depth))
        self.downsample = PatchMerging(dim, out_dim, stride=2)


class BasicLayer(nn.Module):
    """Stages 1-3: TinyViT blocks, then (except the last stage) patch merging."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, out_dim: int | None, stride: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TinyViTBlock(dim, num_heads, window) for _ in range(depth))
        self.downsample = PatchMerging(dim, out_dim, stride) if out_dim else None


class TinyViTSam(nn.Module):
    """LiteMedSAM's image encoder: ``(B, 3, S, S)`` -> ``(B, 256, S/4, S/4)``."""

    def __init__(
        self,
        embed_dims: Sequence[int] = (64, 128, 160, 320),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (2, 4, 5, 10),
        windows: Sequence[int] = (7, 7, 14, 7),
        out_chans: int = 256,
        mbconv_expand: float = 4.0,
    ) -> None:
        super().__init__()
        self.block_dims = [embed_dims[i] for i in range(1, 4) for _ in range(depths[i])]
        self.patch_embed = PatchEmbed(3, embed_dims[0])
        self.layers = nn.ModuleList([ConvLayer(embed_dims[0], depths[0], embed_dims[1], mbconv_expand)])
        for i in range(1, 4):
            out_dim = embed_dims[i + 1] if i < 3 else None
            self.layers.append(
                BasicLayer(embed_dims[i], depths[i], num_heads[i], windows[i], out_dim, 2 if i < 2 else 1)
            )
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[3], out_chans, 1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor, block_hook: BlockHook | None = None) -> torch.Tensor:
        """Embed ``x``; ``block_hook(i, tokens)`` runs after the i-th transformer block (adapters)."""
        size = x.shape[-1]
        x = self.patch_embed(x)
        for block in self.layers[0].blocks:
            x = block(x)
        x = self.layers[0].downsample(x)
        hw, index = (size // 2, size // 2), 0
        for stage, layer in enumerate(self.layers[1:], start=1):
            for block in layer.blocks:
                x = block(x, hw)
                x = block_hook(index, x) if block_hook else x
                index += 1
            if layer.downsample is not None:
                x = layer.downsample(x.transpose(1, 2).reshape(x.shape[0], -1, *hw))
                hw = (hw[0] // 2, hw[1] // 2) if stage == 1 else hw
        return self.neck(x.transpose(1, 2).reshape(x.shape[0], -1, *hw))
