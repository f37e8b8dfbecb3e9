"""Annotate throughput: frames/s and the share of time spent writing HDF5.

Runs the real annotate pipeline (DataLoader decoding, letterbox, predictor,
post-processing, sharded store, merge) on synthetic frames for each preset
whose LP-SAM checkpoint exists, and writes JSON::

    python benchmarks/annotate.py                       # presets tiny, litemedsam from runs/adapt/<preset>/
    python benchmarks/annotate.py --checkpoint tiny=runs/adapt/default/checkpoints/last.ckpt
    python benchmarks/annotate.py --stub 256            # pipeline overhead only (stand-in predictor, no LP-SAM)

The HDF5 share is (committed appends + final merge) / (inference loop + merge).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from _common import ROOT, BenchmarkRun, add_common_args

PRESETS = ("tiny", "litemedsam")


def make_frames(folder: Path, count: int, height: int = 600, width: int = 800) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        image = cv2.GaussianBlur(rng.integers(0, 256, (height, width), dtype=np.uint8), (0, 0), 3)
        cv2.circle(image, (width // 3 + k % 50, height // 2), height // 6, 230, -1)
        cv2.imwrite(str(folder / f"frame{k:05d}.png"), image)


def run(name: str, checkpoint: str, loader: str, frames: Path, out: Path, args: argparse.Namespace) -> dict:
    from lightning.pytorch.loggers import TensorBoardLogger

    from anaus_pl.data.datamodules.annotate import AnnotateFramesDataModule
    from anaus_pl.data.frame_sources import FrameInput
    from anaus_pl.lightning_cli import AnausTrainer
    from anaus_pl.tasks.annotate import AnnotateTask
    from anaus_pl.tasks.annotate_writer import StoreOptions

    trainer = AnausTrainer(
        accelerator=args.accelerator,
        devices=1,
        logger=TensorBoardLogger(out, name=name),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = AnnotateTask(checkpoint, predictor_loader=loader)
    data = AnnotateFramesDataModule([FrameInput(str(frames))], batch_size=args.batch_size, num_workers=args.workers)
    summary = trainer.annotate(model, data, StoreOptions(path=str(out / name / "anatomy.h5"), preview_frames=0))
    seconds = summary["seconds"]
    hdf5 = seconds["hdf5_append"] + seconds["merge"]
    return {
        "preset": name,
        "frames": summary["frames_processed"],
        "frames_per_second": summary["frames_per_second"],
        "image_size": model.image_size,
        "hdf5_seconds": round(hdf5, 3),
        "hdf5_share": round(hdf5 / max(1e-9, seconds["inference"] + seconds["merge"]), 4),
        "seconds": seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--checkpoint", action="append", default=[], metavar="PRESET=PATH", help="LP-SAM checkpoint of a preset"
    )
    parser.add_argument("--stub", type=int, metavar="SIZE", help="use the tests' stand-in predictor at this input size")
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--accelerator", default="auto")
    add_common_args(parser, "annotate")
    args = parser.parse_args()
    if args.quick:
        args.frames = min(args.frames, 32)
    bench = BenchmarkRun("annotate", args)

    targets: list[tuple[str, str, str]] = []
    if args.stub:
        sys.path.insert(0, str(ROOT / "tests" / "tasks"))
        from stub_lpsam import write_checkpoint

        stub = write_checkpoint(Path(tempfile.mkdtemp()) / "stub.json", image_size=args.stub)
        targets.append((f"stub{args.stub}", str(stub), "stub_lpsam:load_stub"))
    given = dict(item.split("=", 1) for item in args.checkpoint)
    for preset in PRESETS if not args.stub or given else ():
        path = Path(given.get(preset, ROOT / "runs" / "adapt" / preset / "checkpoints" / "last.ckpt"))
        if path.is_file():
            targets.append((preset, str(path), "anaus_pl.tasks.adapt:load_lpsam"))
        else:
            print(
                f"skip {preset}: no LP-SAM checkpoint at {path} (train it with the adapt stage or pass --checkpoint {preset}=PATH)"
            )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp) / "frames"
        make_frames(frames, args.frames)
        for name, checkpoint, loader in targets:
            results.append(run(name, checkpoint, loader, frames, Path(tmp) / "out", args))
            print(json.dumps(results[-1]))
    summary = "; ".join(
        f"{r['preset']} {r['frames_per_second']:.1f} frames/s at {r['image_size']} px, "
        f"HDF5 {r['hdf5_share']:.0%} of the time"
        for r in results
    )
    bench.finish(results, summary or "no preset to run (no LP-SAM checkpoint found and no --stub)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
