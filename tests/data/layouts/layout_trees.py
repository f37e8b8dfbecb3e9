"""Helpers that write small data set trees with the quirks of the real downloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from anaus_pl.data.layouts.cli import main


def write_image(path: Path, array: np.ndarray, **save_options: Any) -> Path:
    """Save ``array`` (uint8/uint16, 2-D or channel-last) with PIL, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **save_options)
    return path


def speckle(height: int, width: int, seed: int = 0, dtype: type = np.uint8) -> np.ndarray:
    """A random grey image (uint8 or uint16) of the given size."""
    high = 256 if dtype == np.uint8 else 65536
    return np.random.default_rng(seed).integers(1, high, (height, width), dtype=np.int64).astype(dtype)


def box(height: int, width: int, rows: slice, cols: slice, value: int = 255) -> np.ndarray:
    """A mask with one rectangle of ``value`` on zeros."""
    mask = np.zeros((height, width), np.uint8)
    mask[rows, cols] = value
    return mask


def write_video(path: Path, frames: list[np.ndarray], fps: float = 9.0) -> Path:
    """An MJPG ``.avi`` of grey frames."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def write_xlsx(path: Path, rows: list[list[Any]]) -> Path:
    """An ``.xlsx`` whose first sheet holds ``rows`` (the first is the header)."""
    import openpyxl

    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    workbook.save(path)
    return path


def truncate(path: Path, keep: int = 40) -> Path:
    """Cut a file to its first ``keep`` bytes (a broken download)."""
    path.write_bytes(path.read_bytes()[:keep])
    return path


def run_check(capsys, layout: str, root: Path, *options: str) -> tuple[int, dict]:
    """Run ``anaus-pl datasets check`` in-process: ``(exit code, parsed JSON or {})``."""
    argv = ["check", "--layout", layout, "--root", str(root)]
    for option in options:
        argv += ["-o", option]
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}
