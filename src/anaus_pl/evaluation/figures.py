"""Report figures: bars per metric with fold dots, confusion matrices, segmentation overlays."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def bar_figure(task: str, name: str, inits: dict, unscaled: bool = False) -> plt.Figure:
    """Mean per init as bars (sample std as error bar), each fold as a dot; ratios in %, ``unscaled`` metrics as they are."""
    figure, axis = plt.subplots(figsize=(1.6 + 1.2 * len(inits), 3.2))
    scale = 1 if unscaled else 100
    for x, entry in enumerate(inits.values()):
        values = np.array([fold[name] for fold in entry["folds"]]) * scale
        axis.bar(
            x, values.mean(), yerr=values.std(ddof=1) if len(values) > 1 else 0, color=f"C{x}", alpha=0.6, capsize=4
        )
        jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        axis.scatter(x + jitter, values, color="k", s=12, zorder=3)
    axis.set_xticks(range(len(inits)), list(inits), rotation=15)
    axis.set_ylabel(f"{name} ({'px' if unscaled else '%'})")
    axis.set_title(f"{task}: {name}")
    figure.tight_layout()
    return figure


def confusion_figure(task: str, inits: dict) -> plt.Figure:
    """Confusion matrices summed over folds, one panel per init."""
    figure, axes = plt.subplots(1, len(inits), figsize=(3.4 * len(inits), 3.2), squeeze=False)
    for axis, (label, entry) in zip(axes[0], inits.items()):
        matrix = np.array(entry["pooled_confusion"])
        axis.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            axis.text(
                j, i, str(value), ha="center", va="center", color="white" if value > matrix.max() / 2 else "black"
            )
        classes = entry["class_names"]
        axis.set_xticks(range(len(classes)), classes, rotation=30)
        axis.set_yticks(range(len(classes)), classes)
        axis.set_xlabel("predicted")
        axis.set_ylabel("truth")
        axis.set_title(f"{label} (acc. {100 * entry['pooled_accuracy']:.1f}%)")
    figure.suptitle(task)
    figure.tight_layout()
    return figure


def overlay_figure(task: str, folders: dict[str, Path], count: int) -> plt.Figure | None:
    """Per init (label -> its results folder), the best and worst test images by Dice: truth green, prediction red."""
    rows = []
    for label, folder in folders.items():
        files = sorted(folder.glob("*_cases.npz"))
        if not files:
            continue
        cases = [np.load(f) for f in files]
        dice = np.concatenate([c["dice"] for c in cases])
        stack = {key: np.concatenate([c[key] for c in cases]) for key in ("image", "truth", "prediction", "source")}
        order = np.argsort(dice, kind="stable")
        rows.append((label, "best", order[::-1][:count], stack, dice))
        rows.append((label, "worst", order[:count], stack, dice))
    if not rows:
        return None
    figure, axes = plt.subplots(len(rows), count, figsize=(2.2 * count, 2.3 * len(rows)), squeeze=False)
    for r, (label, which, chosen, stack, dice) in enumerate(rows):
        for c in range(count):
            axis = axes[r][c]
            axis.axis("off")
            if c >= len(chosen):
                continue
            i = chosen[c]
            rgb = np.repeat(stack["image"][i][..., None], 3, -1).astype(float) / 255
            rgb[stack["truth"][i] > 0] = 0.5 * rgb[stack["truth"][i] > 0] + [0, 0.5, 0]
            rgb[stack["prediction"][i] > 0] = 0.5 * rgb[stack["prediction"][i] > 0] + [0.5, 0, 0]
            axis.imshow(rgb.clip(0, 1))
            axis.set_title(f"{label} {which}\nDice {100 * dice[i]:.1f}", fontsize=7)
    figure.suptitle(f"{task}: truth green, prediction red (overlap yellow-brown)")
    figure.tight_layout()
    return figure
