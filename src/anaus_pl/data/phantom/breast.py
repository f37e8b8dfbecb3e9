"""Breast scan (linear probe): skin, fat lobules with Cooper's ligaments, glandular layer, pectoralis, lesions.

Benign lesions are smooth, oval and wider than tall (cysts anechoic with
posterior enhancement); malignant ones are irregular or spiculated, often
taller than wide, with an echogenic halo and posterior shadowing. Normal
scans may hold a fat lobule that mimics a lesion but is not labelled.
Label map: 0 background, k = k-th lesion (instances, for BUSI's ``_mask_1``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from anaus_pl.data.phantom.scene import Scene
from anaus_pl.data.phantom.shapes import lobulated, pixel_grid, soften, spiculated, texture

BreastClass = Literal["benign", "malignant", "normal"]


def breast_scene(height: int, width: int, rng: np.random.Generator, kind: BreastClass, n_lesions: int = 1) -> Scene:
    """A breast view of the given class; ``n_lesions`` lesions (instances 1..n) unless normal."""
    yy, xx = pixel_grid(height, width)
    scene = Scene.soft_tissue(height, width, 0.35)
    scene.echogenicity *= texture((height, width), rng, 5.0, 0.4)
    scene.paint(soften(yy < height * rng.uniform(0.02, 0.035)), 2.5)
    undulation = height * 0.04 * np.sin(xx / width * rng.uniform(3, 8) + rng.uniform(0, 6))
    gland_top = height * rng.uniform(0.18, 0.3) + undulation
    gland_bottom = height * rng.uniform(0.58, 0.7) + undulation * 0.5
    glandular = (yy > gland_top) & (yy < gland_bottom)
    scene.paint(
        soften(glandular, 1.5), float(rng.uniform(1.1, 1.6)) * texture((height, width), rng, 2.0, 0.45), density=0.9
    )
    ligaments = np.abs(np.sin((xx + 8 * np.sin(yy / 9.0)) / width * rng.uniform(10, 18) * np.pi)) > 0.97
    scene.paint(soften(ligaments & (yy < gland_top), 0.6), 2.0)
    muscle_top = height * rng.uniform(0.78, 0.88)
    fibres = 1.0 + 0.5 * np.sin((yy - 0.3 * xx) * rng.uniform(0.7, 1.1))
    scene.paint(soften(yy > muscle_top, 1.2), 0.55 * fibres, density=0.6)

    if kind == "normal":
        if rng.random() < 0.5:  # a fat lobule: hypoechoic oval in the fat layer, not a lesion
            lobule = lobulated(
                rng,
                height * rng.uniform(0.1, 0.2),
                width * rng.uniform(0.2, 0.8),
                height * 0.06,
                width * rng.uniform(0.08, 0.15),
                roughness=0.08,
            )
            scene.paint(soften(lobule.inside(yy, xx)), 0.3)
        return scene
    for instance in range(1, n_lesions + 1):
        add_lesion(scene, rng, kind, instance, yy, xx, gland_top, gland_bottom)
    return scene


def add_lesion(
    scene: Scene,
    rng: np.random.Generator,
    kind: BreastClass,
    instance: int,
    yy: np.ndarray,
    xx: np.ndarray,
    gland_top: np.ndarray,
    gland_bottom: np.ndarray,
) -> None:
    """Draw lesion ``instance`` in the glandular layer and label it."""
    height, width = yy.shape
    column = int(rng.uniform(0.25, 0.75) * width)
    cy = float(rng.uniform(0.35, 0.65) * (gland_top[0, column] + gland_bottom[0, column]))
    size = float(rng.uniform(0.07, 0.16)) * height
    cx = float(column)
    if kind == "malignant":
        tall = rng.random() < 0.6
        ry, rx = (size * rng.uniform(1.0, 1.4), size * rng.uniform(0.7, 1.0)) if tall else (size * 0.8, size * 1.2)
        blob = lobulated(
            rng, cy, cx, ry, rx, roughness=float(rng.uniform(0.2, 0.45)), angle=float(rng.uniform(-0.4, 0.4))
        )
        blob = spiculated(blob, rng, int(rng.integers(2, 9)), float(rng.uniform(0.2, 0.5)))
        echo = float(rng.uniform(0.1, 0.3))
        attenuation = float(rng.uniform(80.0, 220.0)) if rng.random() < 0.8 else 20.0
        rho = blob.radius_ratio(yy, xx)
        if rng.random() < 0.7:  # echogenic halo
            scene.paint(soften((rho > 1.0) & (rho < 1.25), 1.2) * 0.8, 2.2)
    else:
        cyst = rng.random() < 0.35
        blob = lobulated(
            rng,
            cy,
            cx,
            size * rng.uniform(0.55, 0.8),
            size * rng.uniform(0.9, 1.4),
            roughness=0.06,
            angle=float(rng.uniform(-0.25, 0.25)),
        )
        echo = float(rng.uniform(0.02, 0.05)) if cyst else float(rng.uniform(0.15, 0.45))
        attenuation = 2.0 if cyst else float(rng.uniform(8.0, 30.0))
        rho = blob.radius_ratio(yy, xx)
    inside = rho <= 1.0
    scene.paint(soften(inside), echo * texture(yy.shape, rng, 2.0, 0.3), density=0.9, attenuation=attenuation)
    scene.labels[inside] = instance
