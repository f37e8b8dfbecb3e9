"""A tiny anatomy store of synthetic frames with elliptic structures, written with AnatomyStoreWriter."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anaus_pl.data.anatomy_store import AnatomyStoreWriter

CLASSES = ["thyroid_nodule", "thyroid_gland", "lv", "myocardium", "la"]


def write_synthetic_store(path: Path, frames: int = 32, size: int = 96, seed: int = 0) -> Path:
    """Frames of speckle with 1-3 bright/dark ellipses labelled with the vocabulary ids."""
    rng = np.random.default_rng(seed)
    writer = AnatomyStoreWriter(path, CLASSES, size)
    yy, xx = np.mgrid[:size, :size]
    images, masks, valid, sources = [], [], [], []
    for i in range(frames):
        h, w = size, int(rng.integers(size * 3 // 4, size + 1))
        image = rng.normal(60, 15, (size, size))
        mask = np.zeros((size, size), np.uint8)
        for label in rng.choice(np.arange(1, len(CLASSES) + 1), size=int(rng.integers(1, 4)), replace=False):
            cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
            ry, rx = rng.uniform(0.1, 0.3, 2) * size
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
            mask[inside] = label
            image[inside] = rng.normal(40 * label % 255, 10, inside.sum())
        image[:, w:] = 0
        mask[:, w:] = 0
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        masks.append(mask)
        valid.append((h, w))
        sources.append(f"synthetic/{i}.png")
    writer.append(
        np.stack(images),
        np.stack(masks),
        np.array(valid, np.int32),
        rng.random((frames, len(CLASSES)), dtype=np.float32),
        sources,
    )
    return writer.finalize()
