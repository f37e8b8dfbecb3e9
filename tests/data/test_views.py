"""Two views and their core region: geometry with crops and flips, label maps, never an empty core."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anaus_pl.data.views import TwoViewTransform, ViewConfig, ViewGeometry, cut_core, grid_label_map, intersection

SIZE = 200


def _no_photometric(**overrides) -> ViewConfig:
    return ViewConfig(
        **{
            "image_size": 96,
            "core_size": 64,
            "jitter_p": 0.0,
            "blur_p": (0.0, 0.0),
            "solarize_p": (0.0, 0.0),
            **overrides,
        }
    )


def _direct_core(frame: np.ndarray, region: tuple[int, int, int, int], size: int, nearest: bool) -> np.ndarray:
    """The core cut straight from the original frame: what both cores must show."""
    flat = ViewGeometry((0, 0, frame.shape[1], frame.shape[0]), False, frame.shape[0])
    zeros = np.zeros_like(frame)
    image, mask = cut_core(frame, frame if nearest else zeros, region, flat, size)
    return mask if nearest else image


@pytest.mark.parametrize("axis", [0, 1])
def test_both_cores_show_the_same_original_pixels_after_crops_and_flips(axis: int) -> None:
    torch.manual_seed(0)
    transform = TwoViewTransform(_no_photometric(flip_p=0.5))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    frame = (xx if axis else yy).astype(np.uint8)  # pixel value = its own coordinate
    labels = ((yy // 25) * 8 + xx // 25).astype(np.uint8)
    flips_seen = set()
    for _ in range(60):
        sample = transform(frame, labels, (SIZE - 20, SIZE))
        first, second = sample.geometry
        flips_seen.add((first.flipped, second.flipped))
        region = intersection(first.box, second.box)
        assert region is not None
        truth = _direct_core(frame, region, 64, nearest=False).astype(int)
        for core in sample.cores:
            # interpolation error of two resamplings stays within ~1 grey level (= 1 pixel of position)
            assert np.median(np.abs(core.astype(int) - truth)) <= 1
            assert np.abs(core.astype(int) - truth).mean() < 1.5
        truth_labels = _direct_core(labels, region, 64, nearest=True)
        for core_mask in sample.core_masks:
            assert (core_mask == truth_labels).mean() > 0.85  # only boundary pixels may differ
        # inside the valid area: crops never include the zero padding rows
        assert first.box[3] <= SIZE - 20 and second.box[3] <= SIZE - 20
    assert len(flips_seen) == 4  # every flip combination was exercised


def test_view_label_maps_follow_the_view_geometry() -> None:
    torch.manual_seed(1)
    transform = TwoViewTransform(_no_photometric(flip_p=1.0))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    frame = xx.astype(np.uint8)
    sample = transform(frame, frame.copy(), (SIZE, SIZE))
    for view, mask in zip(sample.views, sample.masks):
        assert view.shape == mask.shape == (96, 96)
        assert np.abs(view.astype(int) - mask.astype(int)).mean() < 1.0  # same geometry, nearest vs linear
        assert view[:, 0].mean() > view[:, -1].mean()  # flipped: x decreases left to right


def test_never_an_empty_core_even_when_overlap_is_demanding() -> None:
    torch.manual_seed(2)
    transform = TwoViewTransform(_no_photometric(crop_scale=(0.05, 0.1), min_overlap=0.9, max_tries=2))
    frame = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE), dtype=np.uint8)
    for _ in range(20):
        first, second, region = transform.sample_geometry((SIZE, SIZE))
        assert region is not None
        area = (region[2] - region[0]) * (region[3] - region[1])
        smaller = min((b[2] - b[0]) * (b[3] - b[1]) for b in (first.box, second.box))
        assert area >= 0.9 * smaller
    assert transform(frame, frame, (SIZE, SIZE)).cores[0].shape == (64, 64)


def test_photometric_steps_leave_label_maps_alone() -> None:
    torch.manual_seed(3)
    transform = TwoViewTransform(
        ViewConfig(
            image_size=64,
            jitter_p=1.0,
            blur_p=(1.0, 1.0),
            solarize_p=(1.0, 1.0),
            flip_p=0.0,
            crop_scale=(1.0, 1.0),
            crop_ratio=(1.0, 1.0),
        )
    )
    labels = np.zeros((64, 64), np.uint8)
    labels[10:30, 20:50] = 3
    frame = np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8)
    sample = transform(frame, labels, (64, 64))
    assert np.array_equal(sample.masks[0], labels) and np.array_equal(sample.masks[1], labels)
    assert not np.array_equal(sample.views[0], frame)


def test_grid_label_map_covers_the_valid_area_in_cells() -> None:
    grid = grid_label_map((60, 80), 100, 4)
    assert set(np.unique(grid[:60, :80])) == set(range(16))
    assert grid[0, 0] == 0 and grid[59, 79] == 15 and grid[0, 20] == 1 and grid[15, 0] == 4


def test_bad_config_is_named() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        TwoViewTransform(ViewConfig(image_size=100))
    with pytest.raises(ValueError, match="min_overlap"):
        TwoViewTransform(ViewConfig(min_overlap=0.0))


def test_view_grid_colours_regions_but_not_background() -> None:
    from anaus_pl.data.view_grid import view_grid

    image = torch.full((1, 16, 16), 0.5)
    labels = torch.zeros(16, 16, dtype=torch.uint8)
    labels[:8] = 2
    grid = view_grid([[(image, labels), (image, torch.zeros_like(labels))]], size=16)
    assert grid.shape == (3, 20, 38) and grid.dtype == torch.uint8
    top, bottom = grid[:, 2 + 2, 2 + 2], grid[:, 2 + 12, 2 + 2]
    assert not torch.equal(top, bottom) and bottom.tolist() == [127, 127, 127]


def test_brightness_and_contrast_are_multiplicative_factors_as_byol() -> None:
    """On a flat grey-50 frame contrast is void and brightness scales by f in [0.6, 1.4]: outputs 30-70, none black."""
    transform = TwoViewTransform(_no_photometric(jitter_p=1.0))
    frame, labels = np.full((SIZE, SIZE), 50, np.uint8), np.zeros((SIZE, SIZE), np.uint8)
    means = []
    for seed in range(100):
        transform.reseed(seed)
        view = transform(frame, labels, (SIZE, SIZE)).views[0]
        assert view.min() == view.max()  # a flat frame stays flat: one factor for the whole image
        means.append(int(view[0, 0]))
    assert 30 <= min(means) < 36 and 64 < max(means) <= 70, (min(means), max(means))
    assert np.std(means) == pytest.approx(0.4 * 50 / np.sqrt(3), rel=0.25)  # uniform factor: std b * 50 / sqrt(3)


def test_label_maps_sit_on_their_images_at_a_downscale() -> None:
    """A ramp image (value = column) and its label map (id = column) cropped and shrunk 3x:
    the label of view column j is the source column under its centre, 3 j + 1, as the image's
    linear sample there (``INTER_NEAREST`` would give 3 j, a pixel off)."""
    columns = np.tile(np.arange(SIZE, dtype=np.uint8), (SIZE, 1))
    transform = TwoViewTransform(_no_photometric())
    view = ViewGeometry((20, 4, 20 + 144, 4 + 144), False, 48)
    image, labels = transform.render_view(columns, columns, view, 0)
    expected = 20 + 3 * np.arange(48) + 1
    assert np.array_equal(labels[0], expected) and np.array_equal(image[0], expected)
