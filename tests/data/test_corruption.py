"""Vectorised core corruption: each step does what it says and never touches its input."""

import torch

from anaus_pl.data.corruption import CorruptionConfig, bezier_intensity, corrupt, inpaint_noise, local_pixel_shuffle


def test_shuffle_permutes_within_blocks_only() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 1, 20, 22, generator=g)
    out = local_pixel_shuffle(images, 5, 1.0, 1.0, generator=g)
    assert not torch.equal(out, images)
    for r in range(0, 20, 5):
        for c in range(0, 20, 5):
            block_in = images[..., r : r + 5, c : c + 5].flatten(1).sort(1).values
            block_out = out[..., r : r + 5, c : c + 5].flatten(1).sort(1).values
            assert torch.equal(block_in, block_out)
    assert torch.equal(out[..., 20:], images[..., 20:])  # outside the whole blocks
    assert torch.equal(local_pixel_shuffle(images, 5, 0.0, 1.0), images)


def test_bezier_curve_maps_unit_interval_onto_itself() -> None:
    g = torch.Generator().manual_seed(1)
    images = torch.linspace(0, 1, 101).view(1, 1, 1, 101).repeat(4, 1, 1, 1)
    out = bezier_intensity(images, 1.0, generator=g)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out[..., 0], torch.zeros(4, 1, 1), atol=1e-3) and torch.allclose(
        out[..., -1], torch.ones(4, 1, 1), atol=1e-3
    )
    assert not torch.allclose(out, images, atol=1e-2)


def test_inpainting_fills_rectangles_with_noise_and_corrupt_keeps_input() -> None:
    g = torch.Generator().manual_seed(2)
    images = torch.full((3, 1, 40, 40), 0.5)
    out = inpaint_noise(images, 10, 1.0, 0.1, 0.2, generator=g)
    changed = (out != 0.5).float().mean()
    assert 0.02 < changed < 0.5
    before = images.clone()
    corrupted = corrupt(images, CorruptionConfig(), generator=g)
    assert torch.equal(images, before) and corrupted.shape == images.shape


def test_default_shuffle_covers_what_the_released_414_random_blocks_cover() -> None:
    """Released: 414 blocks of 11 px at uniform positions cover 61.7 % of a 224 px image (simulated mean);
    the default grid rate covers the same share (every pixel value distinct, so a shuffled block shows)."""
    config = CorruptionConfig()
    images = torch.arange(224 * 224, dtype=torch.float32).view(1, 1, 224, 224).repeat(64, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    out = local_pixel_shuffle(
        images, round(config.shuffle_block_fraction * 224), 1.0, config.shuffle_fraction, generator=g
    )
    blocks = (out != images)[:, 0, :220, :220].reshape(64, 20, 11, 20, 11).any(4).any(2)  # (64, 20, 20) shuffled?
    coverage = blocks.float().mean().item() * 20 * 11 * 20 * 11 / 224**2
    assert abs(coverage - 0.617) < 0.02, coverage
