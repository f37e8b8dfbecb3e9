"""Geometry shared by the scenes: pixel grids, star-shaped blobs, smooth random texture."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinate arrays ``(H, W)`` (float32)."""
    yy, xx = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
    return yy, xx


@dataclass(frozen=True)
class Blob:
    """A star-shaped region: an ellipse whose radius varies with angle.

    ``harmonics`` are relative radius amplitudes of angular orders 2, 3, ...
    (lobulation); ``spikes`` are (angle, relative length, angular width)
    triples (spiculation).
    """

    cy: float
    cx: float
    ry: float
    rx: float
    angle: float = 0.0
    harmonics: tuple[float, ...] = ()
    phases: tuple[float, ...] = ()
    spikes: tuple[tuple[float, float, float], ...] = ()

    def reach(self) -> float:
        """An upper bound of the boundary's distance from the centre, in pixels."""
        spikes = max((length for _, length, _ in self.spikes), default=0.0)
        return max(self.ry, self.rx) * (1.0 + sum(abs(a) for a in self.harmonics) + spikes)

    def radius_ratio(self, yy: np.ndarray, xx: np.ndarray, margin: float = 1.6) -> np.ndarray:
        """Distance from the centre over the boundary distance in that direction (< 1 inside).

        Computed only within ``margin`` times the blob's reach; elsewhere the
        ratio is reported as ``margin`` (far outside).
        """
        ratio = np.full(yy.shape, margin, np.float32)
        reach = self.reach() * margin
        rows = slice(max(int(self.cy - reach), 0), max(int(self.cy + reach) + 2, 0))
        cols = slice(max(int(self.cx - reach), 0), max(int(self.cx + reach) + 2, 0))
        dy, dx = yy[rows, cols] - self.cy, xx[rows, cols] - self.cx
        if dy.size == 0:
            return ratio
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        u = (dx * cos + dy * sin) / self.rx
        v = (-dx * sin + dy * cos) / self.ry
        rho = np.hypot(u, v)
        theta = np.arctan2(v, u)
        boundary = np.ones_like(rho)
        for order, (amplitude, phase) in enumerate(zip(self.harmonics, self.phases), start=2):
            boundary += amplitude * np.cos(order * theta + phase)
        for spike_angle, length, width in self.spikes:
            gap = (theta - spike_angle + np.pi) % (2 * np.pi) - np.pi
            boundary += length * np.exp(-0.5 * (gap / width) ** 2)
        ratio[rows, cols] = np.minimum(rho / np.maximum(boundary, 0.2), margin)
        return ratio

    def inside(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return self.radius_ratio(yy, xx) <= 1.0


def lobulated(
    rng: np.random.Generator,
    cy: float,
    cx: float,
    ry: float,
    rx: float,
    *,
    roughness: float,
    angle: float = 0.0,
    orders: int = 5,
) -> Blob:
    """A blob with random lobulation of relative size ``roughness``."""
    amplitudes = tuple(float(a) for a in rng.uniform(0, roughness, orders) / np.arange(1, orders + 1))
    phases = tuple(float(p) for p in rng.uniform(0, 2 * np.pi, orders))
    return Blob(cy, cx, ry, rx, angle, amplitudes, phases)


def spiculated(blob: Blob, rng: np.random.Generator, count: int, length: float) -> Blob:
    """The same blob with ``count`` spicules of relative length about ``length``."""
    spikes = tuple(
        (float(rng.uniform(-np.pi, np.pi)), float(rng.uniform(0.5, 1.0) * length), float(rng.uniform(0.04, 0.1)))
        for _ in range(count)
    )
    return Blob(blob.cy, blob.cx, blob.ry, blob.rx, blob.angle, blob.harmonics, blob.phases, spikes)


def texture(shape: tuple[int, int], rng: np.random.Generator, scale: float, strength: float) -> np.ndarray:
    """Smooth multiplicative heterogeneity ``exp(strength * z)``, ``z`` a unit-variance field of correlation length ``scale``.

    Drawn on a grid ``scale`` times coarser and interpolated (cheap for long correlation lengths).
    """
    coarse = (int(np.ceil(shape[0] / scale)) + 3, int(np.ceil(shape[1] / scale)) + 3)
    field = cv2.GaussianBlur(rng.standard_normal(coarse, dtype=np.float32), (0, 0), 0.8, borderType=cv2.BORDER_REFLECT)
    field = cv2.resize(field, (int(coarse[1] * scale), int(coarse[0] * scale)), interpolation=cv2.INTER_CUBIC)[
        : shape[0], : shape[1]
    ]
    field /= max(float(field.std()), 1e-6)
    return np.exp(np.float32(strength) * field).astype(np.float32)


def soften(mask: np.ndarray, sigma: float = 0.8) -> np.ndarray:
    """A float version of a boolean region with a slightly blurred edge (tissue boundaries are not steps)."""
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


def blend(base: np.ndarray, region: np.ndarray, value: np.ndarray | float) -> np.ndarray:
    """``base`` with ``value`` painted where ``region`` (a soft 0..1 weight) is set."""
    return base * (1.0 - region) + value * region
