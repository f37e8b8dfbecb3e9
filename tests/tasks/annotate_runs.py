"""Helpers of the annotate tests: synthetic inputs, a stage config, and running the stage in or out of process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import yaml

from anaus_pl.cli import main
from anaus_pl.data.anatomy_store import StoreError, completed_sources, shard_paths

TESTS_DIR = Path(__file__).parent
SRC = TESTS_DIR.parents[1] / "src"


def synthetic_frame(h: int, w: int, shift: int, seed: int) -> np.ndarray:
    """Speckle background with one bright disc (class 1 of the stub) and one dark box (class 2)."""
    rng = np.random.default_rng(seed)
    image = (rng.random((h, w)) * 50 + 85).astype(np.uint8)
    cv2.circle(image, (w // 3 + shift, h // 2), max(3, h // 6), 230, -1)
    cv2.rectangle(image, (2 * w // 3, h // 4), (2 * w // 3 + w // 8, h // 4 + h // 5), 10, -1)
    return image


def make_inputs(root: Path, folders: int = 2, frames_per_folder: int = 6, video_frames: int = 12) -> Path:
    """USCL-style frame folders, one video, one empty frame, one corrupt image and one corrupt video."""
    for f in range(folders):
        folder = root / "frames" / f"Cov-case{f}_mp4"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(frames_per_folder):
            cv2.imwrite(str(folder / f"Cov-case{f}_mp4_frame{k}.png"), synthetic_frame(90, 120, k, seed=100 * f + k))
    writer = cv2.VideoWriter(str(root / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (100, 80))
    for k in range(video_frames):
        writer.write(cv2.cvtColor(synthetic_frame(80, 100, k, seed=1000 + k), cv2.COLOR_GRAY2BGR))
    writer.release()
    cv2.imwrite(str(root / "empty.png"), np.full((50, 70), 110, np.uint8))
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "broken.avi").write_bytes(b"RIFF\x00\x00 garbage")
    return root


def write_config(
    path: Path,
    data: Path,
    store: Path,
    checkpoint: Path,
    *,
    devices: int = 1,
    strategy: str = "auto",
    keep_empty: bool = True,
    flush_frames: int = 4,
    num_workers: int = 0,
    loader: str = "stub_lpsam:load_stub",
) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": devices,
            "strategy": strategy,
            "enable_model_summary": False,
            "enable_progress_bar": False,
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(store.parent / "tb"), "name": "annotate", "version": "default"},
            },
        },
        "model": {
            "class_path": "anaus_pl.tasks.annotate.AnnotateTask",
            "init_args": {
                "lpsam_checkpoint": str(checkpoint),
                "predictor_loader": loader,
                "postprocess": {
                    "threshold": 0.5,
                    "min_area": 0,
                    "keep_largest_component": False,
                    "keep_empty": keep_empty,
                },
            },
        },
        "data": {
            "class_path": "anaus_pl.data.datamodules.annotate.AnnotateFramesDataModule",
            "init_args": {
                "batch_size": 4,
                "num_workers": num_workers,
                "inputs": [{"path": str(data), "frame_stride": 2, "max_frames_per_video": 5}],
            },
        },
        "store": {"path": str(store), "flush_frames": flush_frames, "preview_frames": 6},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def run_annotate(config: Path) -> None:
    assert main(["annotate", "--config", str(config)]) == 0


def read_store(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as handle:
        return {name: handle[name][:] for name in ("images", "masks", "valid_hw", "scores", "source")}


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS_DIR)]), "NO_ALBUMENTATIONS_UPDATE": "1"}


def start_annotate(config: Path, **popen: object) -> subprocess.Popen:
    """``anaus-pl annotate --config config`` in a child process (stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "anaus_pl.cli", "annotate", "--config", str(config)],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **popen,
    )


def wait_for_commits(process: subprocess.Popen, store: Path, at_least: int, timeout: float = 120) -> set[str]:
    """Poll until ``store``'s shards hold ``at_least`` committed sources (or ``process`` ends); return them."""
    deadline = time.monotonic() + timeout
    done: set[str] = set()
    while time.monotonic() < deadline and process.poll() is None:
        try:
            done = completed_sources(store) if shard_paths(store) else set()
        except StoreError:  # a shard being created is locked by HDF5 until its writer turns on SWMR
            done = set()
        if len(done) >= at_least:
            break
        time.sleep(0.05)
    return done
