"""Apical views of the heart (phased probe) over a cardiac cycle.

Geometry lives in a frame along the LV long axis (``u`` from the apex towards
the mitral annulus, ``v`` across, negative towards the septum/right heart).
The LV cavity is a half-ellipse closed by the mitral plane; the myocardium is
the shell around it, thickening as the cavity shrinks so its area is
conserved; the LA sits beyond the mitral plane and fills during systole.
Label map (CAMUS): 1 LV cavity, 2 myocardium, 3 left atrium.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from anaus_pl.data.phantom.scene import Scene
from anaus_pl.data.phantom.shapes import pixel_grid, soften, texture

LV, MYOCARDIUM, LA = 1, 2, 3
View = Literal["4CH", "2CH"]


@dataclass(frozen=True)
class Heart:
    """One patient's heart at end-diastole, in pixels of an ``height x width`` image."""

    view: View
    apex_y: float
    apex_x: float
    tilt: float  # long axis angle from vertical, radians (positive: base to the right)
    length: float  # apex to mitral plane
    half_width: float  # LV cavity semi-axis across
    wall: float  # myocardial thickness
    la_length: float
    la_half_width: float
    ejection: float  # relative shortening of the cavity width at end-systole
    blood_echo: float
    muscle_echo: float

    @classmethod
    def random(cls, height: int, width: int, view: View, rng: np.random.Generator) -> Heart:
        length = height * rng.uniform(0.42, 0.52)
        half_width = length * rng.uniform(0.2, 0.26)
        return cls(
            view=view,
            apex_y=height * rng.uniform(0.08, 0.14),
            apex_x=width * rng.uniform(0.5, 0.56),
            tilt=float(rng.uniform(0.05, 0.25) if view == "4CH" else rng.uniform(-0.08, 0.12)),
            length=length,
            half_width=half_width,
            wall=half_width * rng.uniform(0.3, 0.42),
            la_length=length * rng.uniform(0.32, 0.42),
            la_half_width=half_width * rng.uniform(0.85, 1.1),
            ejection=float(rng.uniform(0.15, 0.35)),
            blood_echo=float(rng.uniform(0.03, 0.08)),
            muscle_echo=float(rng.uniform(0.7, 1.1)),
        )


def systole(phase: float) -> float:
    """Contraction state 0 (end-diastole) .. 1 (end-systole) at a point ``phase`` in [0, 1) of the cycle.

    Systole takes the first 40 % of the cycle; diastole relaxes back.
    """
    phase = phase % 1.0
    if phase < 0.4:
        return float(0.5 - 0.5 * np.cos(np.pi * phase / 0.4))
    return float(0.5 + 0.5 * np.cos(np.pi * (phase - 0.4) / 0.6))


def half_ellipse(
    u: np.ndarray, v: np.ndarray, base: float, long_axis: float, half_width: float, v0: float = 0.0
) -> np.ndarray:
    """Region ``u <= base`` inside the ellipse centred at ``(base, v0)``."""
    return (u <= base) & (((u - base) / long_axis) ** 2 + ((v - v0) / half_width) ** 2 <= 1.0)


def ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, au: float, av: float) -> np.ndarray:
    return ((u - cu) / au) ** 2 + ((v - cv) / av) ** 2 <= 1.0


def cardiac_scene(height: int, width: int, heart: Heart, contraction: float, rng: np.random.Generator) -> Scene:
    """The heart at contraction state ``contraction`` (0 ED .. 1 ES)."""
    yy, xx = pixel_grid(height, width)
    cos, sin = np.cos(heart.tilt), np.sin(heart.tilt)
    dy, dx = yy - heart.apex_y, xx - heart.apex_x
    u, v = dy * cos + dx * sin, -dy * sin + dx * cos

    apex_gap = heart.wall  # the endocardial apex sits one wall thickness below the epicardial apex
    ed_long, ed_wide = heart.length - apex_gap, heart.half_width
    shell = (ed_long + heart.wall) * (ed_wide + heart.wall) - ed_long * ed_wide
    base = heart.length * (1.0 - 0.07 * contraction)  # mitral annulus descends towards the apex
    long_axis = (base - apex_gap) * (1.0 - 0.06 * contraction)
    half_width = ed_wide * (1.0 - heart.ejection * contraction)
    s = long_axis + half_width
    wall = (-s + np.sqrt(s * s + 4.0 * shell)) / 2.0  # area-conserving thickness

    cavity = half_ellipse(u, v, base, long_axis, half_width)
    outer = half_ellipse(u, v, base, long_axis + wall, half_width + wall)
    myocardium = outer & ~cavity
    la_scale = 1.0 + 0.15 * contraction
    atrium = ellipse(
        u,
        v,
        base + heart.la_length * la_scale + 1.0,
        0.1 * half_width,
        heart.la_length * la_scale,
        heart.la_half_width * la_scale,
    )

    scene = Scene.soft_tissue(height, width, 0.45)
    scene.echogenicity *= texture((height, width), rng, 7.0, 0.5)
    pericardium = half_ellipse(u, v, base + wall, long_axis + wall * 2.0, half_width + wall * 2.0) & ~outer
    scene.paint(soften(pericardium & (v > -half_width)), 2.5)
    muscle = heart.muscle_echo * texture((height, width), rng, 1.5, 0.25)
    if heart.view == "4CH":
        rv_offset = -(half_width + wall + 0.8 * half_width + 1.0)
        right_wall = half_ellipse(u, v, base, 0.8 * long_axis + wall * 0.6, 0.8 * half_width + wall * 0.5, rv_offset)
        right_ventricle = half_ellipse(u, v, base, 0.8 * long_axis, 0.8 * half_width, rv_offset)
        right_atrium = ellipse(
            u,
            v,
            base + 0.9 * heart.la_length + 1.0,
            rv_offset + 0.2 * half_width,
            0.9 * heart.la_length,
            0.85 * heart.la_half_width,
        )
        scene.paint(soften(right_wall), muscle, density=0.7)
        scene.paint(soften(right_ventricle | right_atrium), heart.blood_echo, density=1.0, attenuation=6.0)
    scene.paint(soften(myocardium), muscle, density=0.7)
    scene.paint(soften(cavity | atrium), heart.blood_echo, density=1.0, attenuation=6.0)
    annulus = (np.abs(u - base) < 1.5) & (np.abs(np.abs(v) - half_width) < wall * 0.8)
    scene.paint(soften(annulus), 3.0)
    near_field = np.exp(-yy / (0.06 * height))  # reverberation clutter at the top of the sector
    scene.echogenicity = scene.echogenicity + 0.4 * near_field

    scene.labels[atrium & ~outer] = LA
    scene.labels[myocardium] = MYOCARDIUM
    scene.labels[cavity] = LV
    return scene
