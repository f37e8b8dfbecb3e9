"""Vectorised Models-Genesis-style corruption of the online core crop (batched torch, any device).

Works on images in [0, 1] (before normalisation, so the intensity curve does
not saturate as in the released code) and never modifies its input in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class CorruptionConfig:
    """Rates of the three corruptions (paper/released defaults).

    Attributes:
        shuffle_p: probability an image gets local pixel shuffling.
        shuffle_block_fraction: block side as a fraction of the image side (11 px at 224).
        shuffle_fraction: fraction of the image's blocks whose pixels are permuted. 0.64 of the
            20 x 20 grid of 11 px blocks covers 62 % of a 224 px core, as the released code's
            414 blocks at random (overlapping) positions do on average.
        nonlinear_p: probability of a random cubic-Bezier intensity curve.
        inpaint_trials: rectangles tried per image; each is drawn with ``inpaint_p``.
        inpaint_p: probability of each in-painting rectangle.
        inpaint_min, inpaint_max: rectangle side range as fractions of the image side.
    """

    shuffle_p: float = 0.8
    shuffle_block_fraction: float = 0.05
    shuffle_fraction: float = 0.64
    nonlinear_p: float = 0.9
    inpaint_trials: int = 10
    inpaint_p: float = 0.95
    inpaint_min: float = 0.1
    inpaint_max: float = 0.2


def local_pixel_shuffle(
    images: torch.Tensor, block: int, p_image: float, p_block: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Permute the pixels inside square blocks of a ``block``-pixel grid.

    ``images (B, C, H, W)``; a block is shuffled when its image is chosen
    (``p_image``) and the block is chosen (``p_block``). The permutation is the
    same for all channels. Pixels outside the last whole block are left alone.
    """
    b, c, h, w = images.shape
    gh, gw = h // block, w // block
    if gh == 0 or gw == 0:
        return images.clone()
    region = images[..., : gh * block, : gw * block]
    patches = F.unfold(region, block, stride=block).view(b, c, block * block, gh * gw)
    keys = torch.rand(b, 1, block * block, gh * gw, generator=generator, device=images.device)
    order = keys.argsort(dim=2).expand(-1, c, -1, -1)
    shuffled = torch.gather(patches, 2, order)
    chosen = (torch.rand(b, 1, 1, 1, generator=generator, device=images.device) < p_image) & (
        torch.rand(b, 1, 1, gh * gw, generator=generator, device=images.device) < p_block
    )
    patches = torch.where(chosen, shuffled, patches)
    out = images.clone()
    out[..., : gh * block, : gw * block] = F.fold(
        patches.view(b, c * block * block, gh * gw), (gh * block, gw * block), block, stride=block
    )
    return out


def bezier_intensity(
    images: torch.Tensor, p_image: float, points: int = 256, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Map intensities through a random cubic Bezier curve from (0, 0) to (1, 1), per image.

    Control points P1, P2 are uniform in [0, 1]^2; the curve is sampled at
    ``points`` values of t and applied by batched linear interpolation.
    """
    b = images.shape[0]
    device, dtype = images.device, images.dtype
    t = torch.linspace(0, 1, points, device=device, dtype=dtype)
    control = torch.rand(b, 2, 2, generator=generator, device=device).to(dtype)  # (B, [P1, P2], [x, y])
    basis = torch.stack([3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2], dim=0)  # (2, T)
    curve = torch.einsum("pt,bpx->btx", basis, control) + (t**3)[None, :, None]  # P3 = (1, 1), P0 = 0
    xs, order = curve[..., 0].sort(dim=1)
    ys = torch.gather(curve[..., 1], 1, order)
    flat = images.reshape(b, -1).clamp(0, 1).contiguous()
    right = torch.searchsorted(xs.contiguous(), flat).clamp(1, points - 1)
    x0, x1 = torch.gather(xs, 1, right - 1), torch.gather(xs, 1, right)
    y0, y1 = torch.gather(ys, 1, right - 1), torch.gather(ys, 1, right)
    mapped = y0 + (flat - x0) / (x1 - x0).clamp_min(1e-8) * (y1 - y0)
    mapped = mapped.clamp(0, 1).view_as(images)
    chosen = torch.rand(b, 1, 1, 1, generator=generator, device=device) < p_image
    return torch.where(chosen, mapped, images)


def inpaint_noise(
    images: torch.Tensor,
    trials: int,
    p_trial: float,
    min_fraction: float,
    max_fraction: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill random rectangles (each kept with ``p_trial``) with uniform noise in [0, 1]."""
    b, c, h, w = images.shape
    device = images.device
    rand = lambda *shape: torch.rand(*shape, generator=generator, device=device)  # noqa: E731
    sizes = min_fraction + (max_fraction - min_fraction) * rand(b, trials, 2)
    rect_h, rect_w = (sizes[..., 0] * h).long().clamp_min(1), (sizes[..., 1] * w).long().clamp_min(1)
    top = (rand(b, trials) * (h - rect_h + 1)).long()
    left = (rand(b, trials) * (w - rect_w + 1)).long()
    rows = torch.arange(h, device=device)[None, None, :, None]
    cols = torch.arange(w, device=device)[None, None, None, :]
    inside = (
        (rows >= top[..., None, None])
        & (rows < (top + rect_h)[..., None, None])
        & (cols >= left[..., None, None])
        & (cols < (left + rect_w)[..., None, None])
    )
    kept = (rand(b, trials) < p_trial)[..., None, None]
    holes = (inside & kept).any(1, keepdim=True)  # (B, 1, H, W)
    return torch.where(holes, rand(b, 1, h, w).to(images.dtype), images)


def corrupt(images: torch.Tensor, config: CorruptionConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shuffle, remap intensities, then in-paint: the online core crop's corruption."""
    block = max(2, round(config.shuffle_block_fraction * images.shape[-1]))
    out = local_pixel_shuffle(images, block, config.shuffle_p, config.shuffle_fraction, generator)
    out = bezier_intensity(out, config.nonlinear_p, generator=generator)
    return inpaint_noise(
        out, config.inpaint_trials, config.inpaint_p, config.inpaint_min, config.inpaint_max, generator
    )
