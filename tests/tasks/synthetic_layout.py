"""A test-only pair reader: B-mode-like scenes with a dark cyst (class 1) and a bright plaque (class 2).

Registered as ``synthetic_pairs``; the root folder only has to exist (scenes
are generated from their index). Half the scenes lack one of the structures,
so "absent" is learned too. Used until the phantom readers land.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from anaus_pl.data.layouts.base import LAYOUTS, Layout, Sample, SampleRef, register

SCENES = 48
SIZE = 80


def make_scene(seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Speckled tissue with an anechoic disc (label 1) and/or a hyperechoic bar (label 2)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    tissue = gaussian_filter(rng.gamma(2.0, 0.5, (size, size)), 1.0) * 0.45 + 0.1
    label = np.zeros((size, size), np.uint8)
    if seed % 4 != 3:
        cy, cx, r = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size, rng.uniform(0.1, 0.18) * size
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        tissue[disc] *= 0.15
        label[disc] = 1
    if seed % 4 != 2:
        y0, x0 = int(rng.uniform(0.05, 0.75) * size), int(rng.uniform(0.05, 0.4) * size)
        bar = (yy >= y0) & (yy < y0 + size // 8) & (xx >= x0) & (xx < x0 + size // 2) & (label == 0)
        tissue[bar] = tissue[bar] * 0.5 + 0.6
        label[bar] = 2
    return (np.clip(tissue, 0, 1) * 255).astype(np.uint8), label


class SyntheticPairs(Layout):
    name = "synthetic_pairs"
    task = "segmentation"
    anatomy = ("cyst", "plaque")

    def index(self) -> list[SampleRef]:
        return [
            SampleRef(source=f"{self.root}/scene_{i}.png", patient=f"p{i // 2}", files={"seed": i})
            for i in range(SCENES)
        ]

    def load(self, ref: SampleRef) -> Sample:
        image, mask = make_scene(ref.files["seed"])
        return Sample(image=image, source=ref.source, mask=mask, patient=ref.patient)


if SyntheticPairs.name not in LAYOUTS:
    register(SyntheticPairs)
