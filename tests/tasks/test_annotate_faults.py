"""Annotate on inputs as clinics and users keep them: nothing a frame holds stops the run."""

from __future__ import annotations

import json
import logging
import struct
import zlib
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from annotate_runs import synthetic_frame, write_config

from anaus_pl.cli import main
from anaus_pl.data.anatomy_store import AnatomyStore


def bomb_png(path: Path, width: int = 40000, height: int = 40000) -> Path:
    """A tiny PNG whose header claims ``width x height`` pixels (a decompression bomb)."""
    cv2.imwrite(str(path), np.zeros((1, 1), np.uint8))
    data = bytearray(path.read_bytes())
    header = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def hostile_inputs(tmp_path) -> Path:
    """Two batches (of 4) of only corrupt files first, then good frames, a bomb, a 1x1 and a 10000x20 image."""
    root = tmp_path / "in"
    root.mkdir()
    for k in range(8):
        (root / f"a{k}_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    for k in range(5):
        cv2.imwrite(str(root / f"b{k}_good.png"), synthetic_frame(60, 80, k, seed=k))
    bomb_png(root / "c_bomb.png")
    cv2.imwrite(str(root / "d_dot.png"), np.full((1, 1), 200, np.uint8))
    cv2.imwrite(str(root / "e_strip.png"), np.full((20, 10000), 200, np.uint8))
    return root


def test_all_bad_batches_bombs_and_odd_shapes_are_logged_skips(hostile_inputs, stub_checkpoint, tmp_path, caplog):
    store = tmp_path / "out" / "anatomy.h5"
    config = write_config(tmp_path / "cfg.yaml", hostile_inputs, store, stub_checkpoint, flush_frames=4)
    with caplog.at_level(logging.WARNING, logger="anaus_pl"):
        assert main(["annotate", "--config", str(config)]) == 0
    names = [Path(s).name for s in AnatomyStore(store).handle["source"].asstr()[:]]
    assert names == [f"b{k}_good.png" for k in range(5)]
    summary = json.loads((store.parent / "summary.json").read_text())
    assert summary["frames_skipped"] == 11 and summary["frames_written"] == 5 and summary["frames_in"] == 16
    with h5py.File(store) as handle:
        assert handle.attrs["frames_skipped"] == 11 and len(handle["skipped"]) == 11
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    bomb = next(m for m in warned if "c_bomb.png" in m)
    assert str(hostile_inputs / "c_bomb.png") in bomb and "decompression bomb" in bomb
    assert any("d_dot.png" in m and "1x1 pixels, below the minimum side of 32" in m for m in warned)
    assert any("e_strip.png" in m and "10000x20 pixels" in m for m in warned)
    assert all(any(f"a{k}_corrupt.png" in m for m in warned) for k in range(8))


def test_a_decompression_bomb_is_a_read_error_naming_the_file(tmp_path):
    from anaus_pl.data.io import FrameReadError, read_frame

    path = bomb_png(tmp_path / "scan.png")
    with pytest.raises(FrameReadError, match=r"scan\.png: refused to decode: Image size \(1600000000 pixels\)"):
        read_frame(path)
