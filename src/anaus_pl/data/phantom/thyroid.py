"""Transverse thyroid scan (linear probe): skin, strap muscles, a lobe, carotid, trachea shadow, nodules.

Label map: 1 thyroid gland (including its nodules), 2 thyroid nodule.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from anaus_pl.data.phantom.scene import Scene
from anaus_pl.data.phantom.shapes import Blob, lobulated, pixel_grid, soften, spiculated, texture

GLAND, NODULE = 1, 2
NoduleKind = Literal["none", "cystic", "benign", "malignant"]


def thyroid_scene(height: int, width: int, rng: np.random.Generator, nodule: NoduleKind) -> Scene:
    """One transverse view of the left or right lobe with at most one nodule of the given kind."""
    yy, xx = pixel_grid(height, width)
    scene = Scene.soft_tissue(height, width, 0.6)
    scene.echogenicity *= texture((height, width), rng, 6.0, 0.35)
    skin = yy < height * rng.uniform(0.025, 0.04)
    scene.paint(soften(skin), 2.2)
    strap_top, strap_bottom = height * rng.uniform(0.07, 0.11), height * rng.uniform(0.2, 0.26)
    striation = 1.0 + 0.35 * np.sin(yy * rng.uniform(0.6, 1.0) + 0.1 * xx)
    scene.paint(soften((yy > strap_top) & (yy < strap_bottom)), 0.5 * striation, density=0.6)

    medial_left = rng.random() < 0.5  # which image side the trachea (midline) is on
    side = -1.0 if medial_left else 1.0
    gland = lobulated(
        rng,
        cy=height * rng.uniform(0.42, 0.5),
        cx=width * (0.5 - 0.06 * side),
        ry=height * rng.uniform(0.15, 0.21),
        rx=width * rng.uniform(0.28, 0.36),
        roughness=0.12,
        angle=float(rng.uniform(-0.15, 0.15)),
    )
    in_gland = gland.inside(yy, xx)
    scene.paint(soften(in_gland), float(rng.uniform(1.2, 1.6)) * texture((height, width), rng, 2.0, 0.15), density=1.0)

    carotid_r = height * rng.uniform(0.07, 0.1)
    carotid = Blob(gland.cy + gland.ry * 0.3, gland.cx + side * (gland.rx + carotid_r * 0.9), carotid_r, carotid_r)
    rho = carotid.radius_ratio(yy, xx)
    scene.paint(soften((rho > 1.0) & (rho < 1.18)), 2.0)
    scene.paint(soften(rho <= 1.0), 0.03, density=1.0, attenuation=3.0)

    trachea_r = height * rng.uniform(0.18, 0.24)
    trachea = Blob(gland.cy + trachea_r * 0.2, gland.cx - side * (gland.rx + trachea_r * 0.5), trachea_r, trachea_r)
    rho = trachea.radius_ratio(yy, xx)
    scene.paint(soften((rho > 0.88) & (rho <= 1.0) & (yy < trachea.cy)), 3.5)
    scene.paint(soften(rho <= 0.88), 0.15, attenuation=400.0)

    spine = yy > height * rng.uniform(0.84, 0.9)
    scene.paint(soften(spine), 3.0, attenuation=300.0)

    scene.labels[in_gland] = GLAND
    if nodule != "none":
        add_nodule(scene, gland, rng, nodule, yy, xx)
    return scene


def add_nodule(
    scene: Scene, gland: Blob, rng: np.random.Generator, kind: NoduleKind, yy: np.ndarray, xx: np.ndarray
) -> None:
    """Draw a nodule inside the gland and label it; kinds differ in echo, margin, shape and calcification."""
    size = float(rng.uniform(0.3, 0.8)) * gland.ry
    cy = gland.cy + float(rng.uniform(-0.3, 0.3)) * gland.ry
    cx = gland.cx + float(rng.uniform(-0.45, 0.45)) * gland.rx
    if kind == "malignant":  # hypoechoic, irregular, often taller than wide, microcalcifications
        blob = lobulated(rng, cy, cx, size * rng.uniform(0.9, 1.3), size * rng.uniform(0.7, 1.0), roughness=0.35)
        blob = spiculated(blob, rng, int(rng.integers(0, 5)), 0.25)
        echo, attenuation = float(rng.uniform(0.25, 0.5)), float(rng.uniform(25.0, 60.0))
    elif kind == "cystic":  # anechoic, smooth, posterior enhancement
        blob = lobulated(rng, cy, cx, size * rng.uniform(0.6, 0.9), size * rng.uniform(0.8, 1.2), roughness=0.05)
        echo, attenuation = float(rng.uniform(0.02, 0.06)), 2.0
    else:  # benign solid: iso- to hypoechoic, smooth, wider than tall, often a dark halo
        blob = lobulated(rng, cy, cx, size * rng.uniform(0.55, 0.85), size * rng.uniform(0.8, 1.2), roughness=0.12)
        echo, attenuation = float(rng.uniform(0.45, 1.3)), 16.0
    rho = blob.radius_ratio(yy, xx)
    inside = rho <= 1.0
    if kind == "benign" and rng.random() < 0.6:
        scene.paint(soften((rho > 1.0) & (rho < 1.15)), 0.25)
    scene.paint(
        soften(inside),
        echo * texture(yy.shape, rng, 2.5, 0.25),
        density=1.0 if kind == "cystic" else 0.8,
        attenuation=attenuation,
    )
    if kind == "malignant" and rng.random() < 0.7:
        spots = inside & (rng.random(yy.shape) < 0.012)
        scene.paint(np.minimum(soften(spots, 0.6) * 3.0, 1.0), 4.0, attenuation=250.0)
    scene.labels[inside] = NODULE
