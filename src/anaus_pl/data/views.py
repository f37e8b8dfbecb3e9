"""Two augmented views of a stored frame and their core region, label maps carried along.

Geometry (all in the original, letterboxed frame's pixel coordinates):

* each view is a random resized crop ``(x0, y0, x1, y1)`` inside the frame's valid
  (unpadded) area, resized to ``image_size`` and horizontally flipped with ``flip_p``;
* the **core region** is the intersection of the two crop boxes. It is cut from
  each augmented view (``core1`` from view 1, ``core2`` from view 2, as the paper's
  figure) with one affine warp that also undoes the view's flip, so both cores
  show the same original pixels in the same orientation, resized to ``core_size``;
* crops whose intersection is below ``min_overlap`` of the smaller crop are redrawn
  (up to ``max_tries``; then view 2 reuses view 1's box), so no core is ever empty.

Label maps follow every geometric step with centre-aligned nearest-neighbour sampling
(``cv2.INTER_NEAREST_EXACT``: a label pixel is the source pixel under its centre, as the
image's linear sampling); photometric steps (BYOL's recipe for grayscale: multiplicative
brightness/contrast jitter as torchvision's ``ColorJitter``, Gaussian blur, solarisation,
probabilities per view) touch only the images.

All draws come from albumentations' own generators; :meth:`TwoViewTransform.reseed`
makes the next sample a function of one seed (see :mod:`anaus_pl.randomness`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import albumentations as A
import cv2
import numpy as np

from anaus_pl.randomness import derive_seed

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends)
MaskSource = Literal["anatomy", "grid", "none"]


@dataclass
class ViewConfig:
    """Augmentation of the two views (BYOL recipe, paper values; tuples are (view 1, view 2)).

    Attributes:
        image_size: side of each square view in pixels (multiple of 32).
        core_size: side of each core crop; ``None`` means ``image_size``.
        crop_scale: area range of the random resized crop (paper 0.2-1.0; released code 0.08-1.0).
        crop_ratio: aspect-ratio range of the crop.
        flip_p: horizontal flip probability.
        jitter_p: probability of brightness/contrast jitter.
        brightness, contrast: jitter strengths (BYOL 0.4, 0.4): factors uniform in ``[1 - b, 1 + b]``,
            brightness ``x * f``, contrast ``mean + (x - mean) * f``, in random order.
        blur_p: Gaussian blur probability per view (BYOL 1.0, 0.1).
        blur_sigma: blur sigma range in pixels at 224 px, scaled with ``image_size``.
        solarize_p: solarisation probability per view (BYOL 0.0, 0.2).
        min_overlap: smallest intersection, as a fraction of the smaller crop's area.
        max_tries: crop redraws before view 2 falls back to view 1's box.
    """

    image_size: int = 224
    core_size: int | None = None
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    blur_p: tuple[float, float] = (1.0, 0.1)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: tuple[float, float] = (0.0, 0.2)
    min_overlap: float = 0.1
    max_tries: int = 20


@dataclass
class ViewGeometry:
    """Where a view came from: its crop box in frame coordinates and whether it is flipped."""

    box: Box
    flipped: bool
    size: int


@dataclass
class TwoViews:
    """One training sample: two views, the two core crops and all their label maps."""

    views: tuple[np.ndarray, np.ndarray]
    masks: tuple[np.ndarray, np.ndarray]
    cores: tuple[np.ndarray, np.ndarray]
    core_masks: tuple[np.ndarray, np.ndarray]
    geometry: tuple[ViewGeometry, ViewGeometry] = field(repr=False, default=None)  # type: ignore[assignment]


def intersection(a: Box, b: Box) -> Box | None:
    """The overlap of two boxes, or ``None`` when they do not overlap."""
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def core_affine(region: Box, view: ViewGeometry, core_size: int) -> np.ndarray:
    """2x3 matrix mapping core pixel indices to view pixel indices (for ``cv2.WARP_INVERSE_MAP``).

    A core pixel centre ``c + 0.5`` sits at frame coordinate ``r0 + (c + 0.5) * extent / core_size``,
    which is at view coordinate ``(X - b0) * size / box_extent`` (mirrored when flipped);
    pixel indices are continuous coordinates minus 0.5.
    """
    bx0, by0, bx1, by1 = view.box
    sx, sy = view.size / (bx1 - bx0), view.size / (by1 - by0)
    ax = (region[2] - region[0]) / core_size * sx
    ay = (region[3] - region[1]) / core_size * sy
    cx = (region[0] - bx0) * sx + 0.5 * ax - 0.5
    cy = (region[1] - by0) * sy + 0.5 * ay - 0.5
    if view.flipped:
        ax, cx = -ax, view.size - 1 - cx
    return np.array([[ax, 0.0, cx], [0.0, ay, cy]], dtype=np.float64)


def cut_core(
    view_image: np.ndarray, view_mask: np.ndarray, region: Box, view: ViewGeometry, core_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the core ``region`` (frame coordinates) out of a view, unflipped, at ``core_size``."""
    matrix = core_affine(region, view, core_size)
    flags = cv2.WARP_INVERSE_MAP
    image = cv2.warpAffine(
        view_image, matrix, (core_size, core_size), flags=flags | cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    # warpAffine's nearest neighbour rounds the (centre-based) source coordinate: aligned with the image
    mask = cv2.warpAffine(
        view_mask, matrix, (core_size, core_size), flags=flags | cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE
    )
    return image, mask


def grid_label_map(valid_hw: tuple[int, int], size: int, cells: int) -> np.ndarray:
    """DetCon's fixed grid: ``cells x cells`` region ids over the valid area of a ``size``-square frame."""
    h, w = valid_hw
    rows = np.minimum(np.arange(size) * cells // max(h, 1), cells - 1)
    cols = np.minimum(np.arange(size) * cells // max(w, 1), cells - 1)
    return (rows[:, None] * cells + cols[None, :]).astype(np.uint8)


class TwoViewTransform:
    """Makes :class:`TwoViews` from a frame, its label map and its valid size (callable, picklable)."""

    def __init__(self, config: ViewConfig, seed: int = 0) -> None:
        if config.image_size % 32:
            raise ValueError(f"views.image_size must be a multiple of 32, got {config.image_size}")
        if not 0.0 < config.min_overlap <= 1.0:
            raise ValueError(f"views.min_overlap must be in (0, 1], got {config.min_overlap}")
        self.config = config
        self.core_size = config.core_size or config.image_size
        sigma_scale = config.image_size / 224
        sigma = (config.blur_sigma[0] * sigma_scale, config.blur_sigma[1] * sigma_scale)
        self.crop = A.RandomResizedCrop(
            size=(config.image_size, config.image_size), scale=config.crop_scale, ratio=config.crop_ratio
        )
        self.photometric = [
            A.Compose(
                [
                    A.ColorJitter(
                        brightness=config.brightness,
                        contrast=config.contrast,
                        saturation=0.0,
                        hue=0.0,
                        p=config.jitter_p,
                    ),
                    A.GaussianBlur(blur_limit=0, sigma_limit=sigma, p=config.blur_p[v]),
                    A.Solarize(threshold_range=(0.5, 0.5), p=config.solarize_p[v]),
                ]
            )
            for v in (0, 1)
        ]
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Make every following draw (crops, flips, photometric steps) a function of ``seed``."""
        for k, transform in enumerate((self.crop, *self.photometric)):
            transform.set_random_seed(derive_seed(seed, k))

    def _crop_box(self, valid_hw: tuple[int, int]) -> Box:
        """A random resized crop box (albumentations' ``RandomResizedCrop`` sampling) inside ``valid_hw``."""
        x0, y0, x1, y1 = self.crop.get_params_dependent_on_data({"shape": valid_hw}, {})["crop_coords"]
        return int(x0), int(y0), int(x1), int(y1)

    def sample_geometry(self, valid_hw: tuple[int, int]) -> tuple[ViewGeometry, ViewGeometry, Box]:
        """Two crop boxes and flips whose overlap passes ``min_overlap``, and that overlap."""
        size, cfg = self.config.image_size, self.config
        first = self._crop_box(valid_hw)
        for _ in range(cfg.max_tries):
            second = self._crop_box(valid_hw)
            region = intersection(first, second)
            if region is not None and area(region) >= cfg.min_overlap * min(area(first), area(second)):
                break
            first = self._crop_box(valid_hw)
        else:
            second, region = first, first
        flips = [self.crop.py_random.random() < cfg.flip_p for _ in range(2)]
        return ViewGeometry(first, flips[0], size), ViewGeometry(second, flips[1], size), region

    def render_view(
        self, image: np.ndarray, mask: np.ndarray, view: ViewGeometry, index: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Crop, resize and flip image and label map (albumentations), then the view's photometric steps."""
        x0, y0, x1, y1 = view.box
        geometric = A.Compose(
            [
                A.Crop(x_min=x0, y_min=y0, x_max=x1, y_max=y1),
                A.Resize(
                    view.size, view.size, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST_EXACT
                ),
                A.HorizontalFlip(p=1.0 if view.flipped else 0.0),
            ]
        )
        out = geometric(image=image, mask=mask)
        return self.photometric[index](image=out["image"])["image"], out["mask"]

    def __call__(self, image: np.ndarray, mask: np.ndarray, valid_hw: tuple[int, int]) -> TwoViews:
        if image.shape != mask.shape:
            raise ValueError(f"image {image.shape} and label map {mask.shape} differ in size")
        geometry = self.sample_geometry(valid_hw)
        view1, region = geometry[:2], geometry[2]
        rendered = [self.render_view(image, mask, view1[v], v) for v in (0, 1)]
        cores = [cut_core(img, msk, region, view1[v], self.core_size) for v, (img, msk) in enumerate(rendered)]
        return TwoViews(
            views=(rendered[0][0], rendered[1][0]),
            masks=(rendered[0][1], rendered[1][1]),
            cores=(cores[0][0], cores[1][0]),
            core_masks=(cores[0][1], cores[1][1]),
            geometry=view1,
        )
