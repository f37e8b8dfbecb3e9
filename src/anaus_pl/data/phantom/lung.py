"""Lung scans (convex probe), built directly on the beam grid where lung artefacts live.

Below the chest wall the pleura is a bright line; beyond it is air, which
shows no tissue, only artefacts that follow the beams:
- regular: smooth pleura, A-lines (reverberations at multiples of the pleural
  depth), at most a couple of faint B-lines;
- pneumonia: a consolidation (tissue-like lung with air bronchograms and a
  shredded deep border) under the pleura, a few B-lines, weaker A-lines;
- covid: thickened, fragmented, irregular pleura, many and partly confluent
  B-lines (vertical comet tails that erase A-lines), small subpleural
  consolidations.
The classes overlap at the margins, as in practice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from anaus_pl.data.phantom.physics import TISSUE_ATTENUATION_DB, Tissue
from anaus_pl.data.phantom.shapes import texture

LungClass = Literal["covid", "pneumonia", "regular"]


@dataclass(frozen=True)
class Lung:
    """One recording's lung state; lateral positions are fractions of the sector width."""

    kind: LungClass
    pleura_depth: float
    pleura_thickness: float
    pleura_roughness: float
    pleura_gaps: tuple[tuple[float, float], ...]  # (centre, half width)
    ribs: tuple[float, ...]
    rib_half_width: float
    a_line_strength: float
    b_lines: tuple[tuple[float, float, float], ...]  # (centre, half width, strength)
    consolidations: tuple[tuple[float, float, float], ...]  # (centre, half width, depth below pleura)
    bronchograms: bool
    sliding: float  # lateral excursion of the lung surface over a breath

    @classmethod
    def random(cls, kind: LungClass, rng: np.random.Generator) -> Lung:
        def lines(count: int, width: tuple[float, float], strength: tuple[float, float]):
            return tuple(
                (float(rng.uniform(0.1, 0.9)), float(rng.uniform(*width)), float(rng.uniform(*strength)))
                for _ in range(count)
            )

        n_ribs = int(rng.integers(0, 3))
        ribs = tuple(float(x) for x in (rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0))[:n_ribs])
        if kind == "regular":
            b_lines = lines(int(rng.choice([0, 0, 0, 1, 2])), (0.008, 0.02), (0.8, 2.0))
            return cls(
                kind,
                float(rng.uniform(0.2, 0.32)),
                0.012,
                0.0,
                (),
                ribs,
                float(rng.uniform(0.06, 0.1)),
                float(rng.uniform(1.5, 3.5)),
                b_lines,
                (),
                False,
                float(rng.uniform(0.01, 0.03)),
            )
        if kind == "pneumonia":
            b_lines = lines(int(rng.integers(0, 4)), (0.01, 0.025), (1.0, 2.5))
            consolidation = (
                ()
                if rng.random() < 0.15
                else ((float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.12, 0.3)), float(rng.uniform(0.2, 0.5))),)
            )
            return cls(
                kind,
                float(rng.uniform(0.18, 0.3)),
                0.015,
                float(rng.uniform(0.0, 0.004)),
                (),
                ribs,
                float(rng.uniform(0.06, 0.1)),
                float(rng.uniform(0.3, 1.5)),
                b_lines,
                consolidation,
                rng.random() < 0.8,
                float(rng.uniform(0.0, 0.015)),
            )
        n_b = int(rng.integers(2, 9))
        confluent = lines(int(rng.integers(0, 3)), (0.04, 0.1), (1.5, 3.0))
        gaps = tuple(
            (float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.02, 0.06))) for _ in range(int(rng.integers(0, 4)))
        )
        small = tuple(
            (float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.03, 0.07)), float(rng.uniform(0.03, 0.1)))
            for _ in range(int(rng.integers(0, 3)))
        )
        return cls(
            kind,
            float(rng.uniform(0.18, 0.3)),
            float(rng.uniform(0.018, 0.035)),
            float(rng.uniform(0.004, 0.012)),
            gaps,
            ribs,
            float(rng.uniform(0.06, 0.1)),
            float(rng.uniform(0.0, 1.0)),
            lines(n_b, (0.01, 0.03), (1.5, 3.5)) + confluent,
            small,
            False,
            float(rng.uniform(0.0, 0.01)),
        )


def lateral_profile(columns: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    return np.exp(-0.5 * ((columns - centre) / half_width) ** 2).astype(np.float32)


def lung_tissue(shape: tuple[int, int], lung: Lung, time: float, rng: np.random.Generator) -> Tissue:
    """Acoustic maps on a ``(rows, beams)`` grid at ``time`` in [0, 1) of a breath (for lung sliding)."""
    rows, cols = shape
    depth = ((np.arange(rows, dtype=np.float32) + 0.5) / rows)[:, None]
    column = ((np.arange(cols, dtype=np.float32) + 0.5) / cols)[None, :]
    shift = lung.sliding * np.sin(2 * np.pi * time)
    lateral = column - shift  # lung-surface coordinate: moves with breathing, the chest wall does not

    echo = np.full(shape, 0.55, np.float32) * texture(shape, rng, 6.0, 0.45)
    echo *= 1.0 + 0.4 * np.sin(depth * rows * 0.35 + 3 * column)  # layered chest-wall muscle
    density = np.ones(shape, np.float32)
    attenuation = np.full(shape, TISSUE_ATTENUATION_DB, np.float32)

    wobble = lung.pleura_roughness * np.sin(lateral * rng.uniform(25, 45) + rng.uniform(0, 6))
    wobble += lung.pleura_roughness * rng.standard_normal((1, cols)).astype(np.float32) * 0.5
    pleura = lung.pleura_depth + wobble
    below = depth > pleura + lung.pleura_thickness
    line = np.exp(-0.5 * ((depth - pleura) / (lung.pleura_thickness * 0.5)) ** 2)
    continuity = np.ones((1, cols), np.float32)
    for centre, half in lung.pleura_gaps:
        continuity *= 1.0 - 0.85 * lateral_profile(lateral, centre, half)
    echo = np.where(below, np.float32(0.04), echo)  # air: no tissue echoes
    density = np.where(below, np.float32(0.4), density)
    echo += 6.0 * line * continuity

    b_mask = np.zeros((1, cols), np.float32)
    for centre, half, strength in lung.b_lines:
        profile = lateral_profile(lateral, centre, half)
        b_mask = np.maximum(b_mask, profile)
        echo += below * strength * profile * (1.0 - 0.3 * depth)
    for k in (2, 3, 4):
        a_line = np.exp(-0.5 * ((depth - k * lung.pleura_depth) / (lung.pleura_thickness * 0.5)) ** 2)
        echo += below * lung.a_line_strength * 0.6 ** (k - 2) * a_line * (1.0 - b_mask)

    for centre, half, extent in lung.consolidations:
        shred = extent * (0.75 + 0.25 * np.sin(lateral * rng.uniform(40, 70) + rng.uniform(0, 6)))
        across = np.abs(lateral - centre) / half
        bottom = pleura + shred * np.sqrt(np.clip(1.0 - across**2, 0.0, 1.0))
        region = below & (depth < bottom)
        echo = np.where(region, 0.9 * texture(shape, rng, 2.0, 0.35), echo)
        density = np.where(region, np.float32(0.8), density)
        echo += 3.0 * (np.abs(depth - bottom) < 0.012) * (across < 1.0)  # bright shredded deep border
        if lung.bronchograms:
            dots = region & (rng.random(shape) < 0.01)
            echo = np.where(dots, np.float32(5.0), echo)

    for rib in lung.ribs:
        profile = np.abs(column - rib) < lung.rib_half_width
        surface = profile & (np.abs(depth - (lung.pleura_depth - 0.02)) < 0.012)
        echo = np.where(surface, np.float32(5.0), echo)
        attenuation = np.where(profile & (depth > lung.pleura_depth - 0.008), np.float32(2000.0), attenuation)
    return Tissue(echo.astype(np.float32), density.astype(np.float32), attenuation.astype(np.float32))
