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

    def radius_ratio(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        """Distance from the centre over the boundary distance in that direction (< 1 inside)."""
        dy, dx = yy - self.cy, xx - self.cx
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
        return (rho / np.maximum(boundary, 0.2)).astype(np.float32)

    def inside(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return self.radius_ratio(yy, xx) <= 1.0


def lobulated(rng: np.random.Generator, cy: float, cx: float, ry: float, rx: float, *, roughness: float,
              angle: float = 0.0, orders: int = 5) -> Blob:
    """A blob with random lobulation of relative size ``roughness``."""
    amplitudes = tuple(float(a) for a in rng.uniform(0, roughness, orders) / np.arange(1, orders + 1))
    phases = tuple(float(p) for p in rng.uniform(0, 2 * np.pi, orders))
    return Blob(cy, cx, ry, rx, angle, amplitudes, phases)


def spiculated(blob: Blob, rng: np.random.Generator, count: int, length: float) -> Blob:
    """The same blob with ``count`` spicules of relative length about ``length``."""
    spikes = tuple((float(rng.uniform(-np.pi, np.pi)), float(rng.uniform(0.5, 1.0) * length), float(rng.uniform(0.04, 0.1)))
                   for _ in range(count))
    return Blob(blob.cy, blob.cx, blob.ry, blob.rx, blob.angle, blob.harmonics, blob.phases, spikes)


def texture(shape: tuple[int, int], rng: np.random.Generator, scale: float, strength: float) -> np.ndarray:
    """Smooth multiplicative heterogeneity: ``exp(strength * N(0,1) field of correlation length scale)``."""
    field = cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), scale, borderType=cv2.BORDER_REFLECT)
    field /= max(float(field.std()), 1e-6)
    return np.exp(np.float32(strength) * field).astype(np.float32)


def soften(mask: np.ndarray, sigma: float = 0.8) -> np.ndarray:
    """A float version of a boolean region with a slightly blurred edge (tissue boundaries are not steps)."""
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


def blend(base: np.ndarray, region: np.ndarray, value: np.ndarray | float) -> np.ndarray:
    """``base`` with ``value`` painted where ``region`` (a soft 0..1 weight) is set."""
    return base * (1.0 - region) + value * region
