"""A preview montage of every scene with its label outlines: ``python -m anaus_pl.data.phantom.montage OUT.png``."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from anaus_pl.data.phantom.recordings import breast_frame, cardiac_clip, lung_clip, thyroid_frame

OUTLINE_COLOURS = ((0, 0, 255), (0, 255, 0), (255, 128, 0))  # BGR for label values 1, 2, 3
TILE = (200, 240)


def outlined(image: np.ndarray, labels: np.ndarray | None, title: str) -> np.ndarray:
    """A BGR tile: the frame, contours of each label value, and a caption."""
    tile = cv2.cvtColor(cv2.resize(image, TILE[::-1], interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
    if labels is not None:
        labels = cv2.resize(labels, TILE[::-1], interpolation=cv2.INTER_NEAREST)
        for value, colour in enumerate(OUTLINE_COLOURS, start=1):
            contours, _ = cv2.findContours((labels == value).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(tile, contours, -1, colour, 1)
    cv2.putText(tile, title, (4, TILE[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1, cv2.LINE_AA)
    return tile


def montage(seed: int = 0) -> np.ndarray:
    """Thyroid and breast classes, the heart at ED/ES in both views, the lung classes; four tiles a row."""
    rng = np.random.default_rng(seed)
    tiles = [
        outlined(*thyroid_frame(rng, (190, 250), kind), f"thyroid {kind}") for kind in ("cystic", "benign", "malignant")
    ]
    tiles += [
        outlined(*breast_frame(rng, (190, 250), kind), f"breast {kind}") for kind in ("benign", "malignant", "normal")
    ]
    for view in ("4CH", "2CH"):
        frames, labels = cardiac_clip(rng, (200, 230), view, [0.0, 1.0])
        tiles += [outlined(frames[i], labels[i], f"{view} {phase}") for i, phase in enumerate(("ED", "ES"))]
    tiles += [
        outlined(lung_clip(rng, (200, 230), kind, 1)[0], None, f"lung {kind}")
        for kind in ("regular", "pneumonia", "covid")
    ]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 4)
    rows = [np.hstack(tiles[i : i + 4]) for i in range(0, len(tiles), 4)]
    return np.vstack(rows)


def save_palette_png(path: Path, bgr: np.ndarray, grey_levels: int = 32) -> None:
    """Grey pixels on ``grey_levels`` levels, coloured pixels on the outline/caption colours: a small exact PNG."""
    colours = np.array([c[::-1] for c in OUTLINE_COLOURS] + [(255, 255, 0)], np.int32)  # RGB
    rgb = bgr[..., ::-1].astype(np.int32)
    grey = rgb[..., 0] == rgb[..., 1]
    grey &= rgb[..., 1] == rgb[..., 2]
    index = (rgb[..., 0] * grey_levels // 256).astype(np.uint8)
    nearest = np.argmin(((rgb[..., None, :] - colours) ** 2).sum(-1), axis=-1).astype(np.uint8) + grey_levels
    index = np.where(grey, index, nearest)
    palette = [v for level in range(grey_levels) for v in [level * 255 // (grey_levels - 1)] * 3]
    image = Image.fromarray(index, mode="P")
    image.putpalette(palette + colours.flatten().tolist())
    image.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "docs/phantom_montage.png")
    save_palette_png(out, montage())
    print(f"montage written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
