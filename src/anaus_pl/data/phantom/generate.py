"""``write_phantom``: every layout under one folder, then the ``.complete`` marker."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from anaus_pl.data.phantom.writers import WRITERS, Counts

Size = Literal["small", "full"]
SIZES: dict[str, Counts] = {
    "small": Counts(),
    "full": replace(
        Counts(),
        ddti=800,
        tg3k=800,
        camus_patients=120,
        butterfly_folders=200,
        butterfly_clips=40,
        pocus_videos=200,
        pocus_images=100,
        busi=400,
        udiat=600,
        tn3k_trainval=640,
        tn3k_test=160,
        hmcqu_a4c=150,
        hmcqu_a2c=50,
    ),
}
COMPLETE = ".complete"


def write_phantom(
    out: str | Path,
    seed: int = 0,
    size: Size = "small",
    layouts: tuple[str, ...] | None = None,
    counts: Counts | None = None,
) -> Path:
    """Write the phantom data sets under ``out/<layout>/`` and ``out/.complete`` last.

    Existing layout folders are replaced, so a rerun after an interruption
    starts each layout clean. The same ``seed`` and ``size`` write the same bytes.
    ``counts`` overrides the item counts of ``size`` (tests, quick looks).
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    chosen = tuple(WRITERS) if layouts is None else layouts
    unknown = sorted(set(chosen) - set(WRITERS))
    if unknown:
        raise ValueError(f"unknown phantom layouts {unknown}; choose from {sorted(WRITERS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / COMPLETE).unlink(missing_ok=True)
    for name in tqdm(chosen, desc="phantom layouts", unit="layout"):
        root = out / name
        if root.exists():
            shutil.rmtree(root)
        WRITERS[name](root, seed, counts or SIZES[size])
    (out / COMPLETE).write_text(f"seed {seed}\nsize {size}\nlayouts {' '.join(chosen)}\n")
    return out
