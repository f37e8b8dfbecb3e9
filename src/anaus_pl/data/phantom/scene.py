"""A scene on the pixel grid: acoustic maps plus the exact label map drawn with them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anaus_pl.data.phantom.physics import TISSUE_ATTENUATION_DB, Acquisition, Scatterers, Tissue, render
from anaus_pl.data.phantom.probes import Probe


@dataclass
class Scene:
    """Pixel-grid maps (see :class:`~anaus_pl.data.phantom.physics.Tissue`) and a ``uint8`` label map."""

    echogenicity: np.ndarray
    density: np.ndarray
    attenuation: np.ndarray
    labels: np.ndarray

    @classmethod
    def soft_tissue(cls, height: int, width: int, echogenicity: float = 1.0) -> Scene:
        shape = (height, width)
        return cls(
            np.full(shape, echogenicity, np.float32),
            np.ones(shape, np.float32),
            np.full(shape, TISSUE_ATTENUATION_DB, np.float32),
            np.zeros(shape, np.uint8),
        )

    def paint(
        self,
        region: np.ndarray,
        echogenicity: np.ndarray | float,
        density: float | None = None,
        attenuation: float | None = None,
    ) -> None:
        """Give a soft region (weights 0..1) new properties; ``None`` keeps the old one."""
        self.echogenicity = self.echogenicity * (1 - region) + echogenicity * region
        if density is not None:
            self.density = self.density * (1 - region) + density * region
        if attenuation is not None:
            self.attenuation = self.attenuation * (1 - region) + attenuation * region

    def tissue(self, probe: Probe) -> Tissue:
        """The maps resampled onto the probe's beam grid."""
        return Tissue(probe.to_beam(self.echogenicity), probe.to_beam(self.density), probe.to_beam(self.attenuation))

    def image(
        self, probe: Probe, acquisition: Acquisition, scatterers: Scatterers, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The B-mode frame and the label map cut to the probe's field of view."""
        frame = render(self.tissue(probe), probe, acquisition, scatterers, rng)
        return frame, np.where(probe.field_of_view, self.labels, 0).astype(np.uint8)
