"""A preview grid of an anatomy store: frames with coloured label overlays and a class legend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from anaus_pl.data.anatomy_store import AnatomyStore

OVERLAY_ALPHA = 0.45


def class_colours(num_classes: int) -> np.ndarray:
    """RGB colours in [0, 1] for labels 1..C (row 0 is background, unused)."""
    import matplotlib

    table = matplotlib.colormaps["tab10" if num_classes <= 10 else "tab20"]
    return np.array([(0, 0, 0)] + [table(k % table.N)[:3] for k in range(num_classes)])


def overlay(image: np.ndarray, mask: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """``uint8`` grayscale frame + label map -> RGB float image with coloured anatomy."""
    rgb = np.repeat(image[..., None].astype(np.float32) / 255.0, 3, axis=-1)
    labelled = mask > 0
    rgb[labelled] = (1 - OVERLAY_ALPHA) * rgb[labelled] + OVERLAY_ALPHA * colours[mask[labelled]]
    return rgb


def preview_figure(store: AnatomyStore, indices: Sequence[int], columns: int = 4) -> Figure:
    """A grid of the chosen frames (cropped to their valid area) with a legend of the classes."""
    colours = class_colours(len(store.classes))
    rows = max(1, -(-len(indices) // columns))
    figure = Figure(figsize=(3 * columns, 3 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.ravel():
        axis.set_axis_off()
    for axis, index in zip(axes.ravel(), indices):
        item = store[int(index)]
        h, w = item["valid_hw"]
        axis.imshow(overlay(item["image"][:h, :w], item["mask"][:h, :w], colours))
        axis.set_title(item["source"].rsplit("/", 1)[-1][-32:], fontsize=7)
    handles = [Patch(color=colours[k + 1], label=name) for k, name in enumerate(store.classes)]
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=9)
    return figure


def spread_indices(length: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(length)``."""
    if length == 0 or count <= 0:
        return []
    return sorted(set(np.linspace(0, length - 1, min(count, length)).round().astype(int).tolist()))
