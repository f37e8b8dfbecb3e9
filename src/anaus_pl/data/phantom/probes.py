"""Probe geometries: where each beam sample lies in the image, and scan conversion back to pixels.

A probe owns a *beam grid* (depth rows x beam columns, depth oversampled so the
RF pulse is resolved). Linear probes fire parallel vertical beams; convex and
phased (sector) probes fire beams fanning out from an apex, so the image is a
polar-to-Cartesian scan conversion of the beam grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.ndimage import uniform_filter1d

AXIAL_OVERSAMPLING = 2


@dataclass
class Probe:
    """Base: image size, beam grid shape and the two coordinate maps between them."""

    height: int
    width: int
    beam_shape: tuple[int, int] = field(init=False)
    beam_yx: np.ndarray = field(init=False, repr=False)  # (2, rows, cols): pixel (y, x) of each beam sample
    pixel_rc: np.ndarray = field(init=False, repr=False)  # (2, H, W): beam-grid (row, col) of each pixel
    field_of_view: np.ndarray = field(init=False, repr=False)  # bool (H, W)

    def to_beam(self, cartesian: np.ndarray, order: int = 1) -> np.ndarray:
        """Sample a pixel-grid map at every beam sample."""
        interpolation = cv2.INTER_NEAREST if order == 0 else cv2.INTER_LINEAR
        return cv2.remap(
            cartesian.astype(np.float32),
            self.beam_yx[1],
            self.beam_yx[0],
            interpolation,
            borderMode=cv2.BORDER_REPLICATE,
        )

    def scan_convert(self, beam_image: np.ndarray) -> np.ndarray:
        """Resample a beam-grid image to pixels; zero outside the field of view."""
        smoothed = uniform_filter1d(beam_image.astype(np.float32), AXIAL_OVERSAMPLING, axis=0)
        image = cv2.remap(
            smoothed, self.pixel_rc[1], self.pixel_rc[0], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return np.where(self.field_of_view, image, np.float32(0.0)).astype(np.float32)

    def depth_rows(self) -> np.ndarray:
        """Depth of each beam row as a fraction of the full depth, in (0, 1)."""
        rows = self.beam_shape[0]
        return (np.arange(rows, dtype=np.float32) + 0.5) / np.float32(rows)


@dataclass
class LinearProbe(Probe):
    """Parallel beams, one per pixel column; the image is the beam grid."""

    def __post_init__(self) -> None:
        rows, cols = self.height * AXIAL_OVERSAMPLING, self.width
        self.beam_shape = (rows, cols)
        y = (np.arange(rows, dtype=np.float32) + 0.5) / AXIAL_OVERSAMPLING - 0.5
        x = np.arange(cols, dtype=np.float32)
        self.beam_yx = np.stack(np.meshgrid(y, x, indexing="ij"))
        py, px = np.meshgrid(
            np.arange(self.height, dtype=np.float32), np.arange(self.width, dtype=np.float32), indexing="ij"
        )
        self.pixel_rc = np.stack([(py + 0.5) * AXIAL_OVERSAMPLING - 0.5, px])
        self.field_of_view = np.ones((self.height, self.width), dtype=bool)


@dataclass
class SectorProbe(Probe):
    """Beams fanning out from an apex at pixel ``(apex_y, apex_x)`` between radii ``r_near`` and ``r_far``.

    A phased array has its apex at the skin (``r_near`` about 0); a convex
    array has a virtual apex above the image, ``r_near`` being the radius of
    curvature of its face.
    """

    apex_y: float = 0.0
    apex_x: float = 0.0
    r_near: float = 1.0
    r_far: float = 100.0
    half_angle: float = 0.7  # radians
    n_beams: int = 128

    def __post_init__(self) -> None:
        rows = int(np.ceil((self.r_far - self.r_near) * AXIAL_OVERSAMPLING))
        self.beam_shape = (rows, self.n_beams)
        radius = self.r_near + (np.arange(rows, dtype=np.float32) + 0.5) / rows * (self.r_far - self.r_near)
        angle = (
            -self.half_angle + (np.arange(self.n_beams, dtype=np.float32) + 0.5) / self.n_beams * 2 * self.half_angle
        )
        rr, aa = np.meshgrid(radius, angle, indexing="ij")
        self.beam_yx = np.stack([self.apex_y + rr * np.cos(aa), self.apex_x + rr * np.sin(aa)]).astype(np.float32)
        py, px = np.meshgrid(
            np.arange(self.height, dtype=np.float32), np.arange(self.width, dtype=np.float32), indexing="ij"
        )
        dy, dx = py - self.apex_y, px - self.apex_x
        pr, pa = np.hypot(dy, dx), np.arctan2(dx, dy)
        row = (pr - self.r_near) / (self.r_far - self.r_near) * rows - 0.5
        col = (pa + self.half_angle) / (2 * self.half_angle) * self.n_beams - 0.5
        self.pixel_rc = np.stack([row, col]).astype(np.float32)
        self.field_of_view = (pr >= self.r_near) & (pr <= self.r_far) & (np.abs(pa) <= self.half_angle)


def phased_probe(height: int, width: int, rng: np.random.Generator) -> SectorProbe:
    """Cardiac phased array: apex at the top centre, 70-90 degree sector filling the image."""
    r_far = height - 1.0
    half = min(np.deg2rad(rng.uniform(35.0, 45.0)), float(np.arcsin(min(1.0, (width / 2 - 1) / r_far))))
    return SectorProbe(
        height,
        width,
        apex_y=0.0,
        apex_x=(width - 1) / 2,
        r_near=2.0,
        r_far=r_far,
        half_angle=half,
        n_beams=int(width * 0.8),
    )


def convex_probe(height: int, width: int, rng: np.random.Generator) -> SectorProbe:
    """Abdominal/lung convex array: virtual apex above the image, curved face at the top."""
    curvature = height * rng.uniform(0.35, 0.7)
    half = min(np.deg2rad(rng.uniform(25.0, 35.0)), float(np.arcsin(min(1.0, (width / 2 - 1) / (curvature + height)))))
    apex_y = -curvature * np.cos(half)  # the face's edges touch the top row
    return SectorProbe(
        height,
        width,
        apex_y=float(apex_y),
        apex_x=(width - 1) / 2,
        r_near=float(curvature),
        r_far=float(height - 1.0 - apex_y),
        half_angle=half,
        n_beams=int(width * 0.8),
    )


def linear_probe(height: int, width: int) -> LinearProbe:
    """Small-parts linear array (thyroid, breast)."""
    return LinearProbe(height, width)
