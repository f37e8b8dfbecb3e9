"""Peak memory of the annotate stage as the number of frames grows: it must stay flat.

For each size (default 1k, 5k, 20k frames) a fresh Python process runs the real
annotate pipeline (frame indexing, DataLoader decoding and letterboxing,
predictor, post-processing, sharded HDF5 store, merge, preview) on a folder of
synthetic ultrasound-like PNG frames. Two peaks are reported: the main
process' own peak resident set size (``getrusage``, exact; it includes the mapped torch libraries), and the
peak anonymous memory of the whole process tree, main process plus DataLoader
workers: the sum of ``Pss_Anon`` from ``/proc/<pid>/smaps_rollup``, sampled
every 0.1 s. Proportional accounting splits the pages forked workers share
with their parent, so the sum is the heap the stage really holds (RSS would
count shared pages once per worker, and library pages depend on what other
processes map them). The frames are hard links to a pool of distinct images, so
20k frames cost little disk and no generation time. The slope of peak RSS
against frame count, in MB per 1000 frames, is the number to watch: the
annotate writer buffers ``flush_frames`` frames and should hold nothing per frame
beyond its index of file names.

By default the predictor is the tests' cheap stand-in (``tests/tasks/stub_lpsam.py``),
which makes the measurement about the pipeline, not the model; ``--checkpoint``
runs a trained LP-SAM instead::

    python benchmarks/memory.py                    # 1000 5000 20000 frames
    python benchmarks/memory.py --quick            # 500 and 3000 frames (too short a range for a firm verdict)
    python benchmarks/memory.py --checkpoint runs/adapt/default/checkpoints/last.ckpt --sizes 1000 5000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from _common import ROOT, BenchmarkRun, add_common_args

STUB_LOADER = "stub_lpsam:load_stub"
LPSAM_LOADER = "anaus_pl.tasks.adapt:load_lpsam"


def write_pool(folder: Path, count: int, height: int, width: int, seed: int) -> list[Path]:
    """``count`` distinct speckled frames with a bright disc and a dark box (what the stand-in predictor labels)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    paths = []
    for k in range(count):
        image = cv2.GaussianBlur(rng.rayleigh(35.0, (height, width)).astype(np.float32), (0, 0), 1.0)
        image = np.clip(image + 60, 0, 255).astype(np.uint8)
        cv2.circle(image, (width // 3 + int(rng.integers(-20, 20)), height // 2), height // 6, 235, -1)
        cv2.rectangle(
            image, (2 * width // 3, height // 4), (2 * width // 3 + width // 8, height // 4 + height // 5), 8, -1
        )
        paths.append(folder / f"pool{k:03d}.png")
        cv2.imwrite(str(paths[-1]), image)
    return paths


def link_frames(pool: list[Path], folder: Path, count: int) -> None:
    """``count`` frame files in ``folder``, hard links to the pool where the file system allows."""
    folder.mkdir(parents=True)
    for k in range(count):
        target = folder / f"frame{k:06d}.png"
        try:
            os.link(pool[k % len(pool)], target)
        except OSError:
            shutil.copyfile(pool[k % len(pool)], target)


class TreePssSampler(threading.Thread):
    """Samples the summed anonymous PSS of a process and its descendants until stopped; keeps the peak (MB)."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_mb = 0.0
        self.available = (
            Path(f"/proc/{pid}/smaps_rollup").exists() and Path(f"/proc/{pid}/task/{pid}/children").exists()
        )
        self._stop_event = threading.Event()

    def _tree(self) -> list[int]:
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
        return pids

    @staticmethod
    def _anon_pss_kib(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss_Anon:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def run(self) -> None:
        while self.available and not self._stop_event.wait(self.interval):
            self.peak_mb = max(self.peak_mb, sum(self._anon_pss_kib(pid) for pid in self._tree()) / 1024)

    def stop(self) -> float | None:
        self._stop_event.set()
        self.join()
        return round(self.peak_mb, 1) if self.available else None


def child(args: argparse.Namespace) -> int:
    """Annotate ``args.frames_dir`` into ``args.store`` and print this process' peak RSS as JSON."""
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger

    from anaus_pl.data.datamodules.annotate import AnnotateFramesDataModule
    from anaus_pl.data.frame_sources import FrameInput
    from anaus_pl.lightning_cli import AnausTrainer
    from anaus_pl.tasks.annotate import AnnotateTask
    from anaus_pl.tasks.annotate_writer import StoreOptions

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "tests" / "tasks"))
    store = Path(args.store)
    trainer = AnausTrainer(
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger(store.parent, name="tb"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = AnnotateTask(args.predictor_checkpoint, predictor_loader=args.predictor_loader)
    data = AnnotateFramesDataModule([FrameInput(args.frames_dir)], batch_size=args.batch_size, num_workers=args.workers)
    start = time.perf_counter()
    summary = trainer.annotate(model, data, StoreOptions(path=str(store)))
    seconds = time.perf_counter() - start
    kib = 1024.0  # ru_maxrss is in KiB on Linux
    print(
        json.dumps(
            {
                "frames": summary["frames_written"],
                "seconds": round(seconds, 2),
                "frames_per_second": summary["frames_per_second"],
                "main_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib, 1),
                "store_mb": round(store.stat().st_size / 2**20, 1),
            }
        )
    )
    return 0


def measure(size: int, pool: list[Path], work: Path, predictor: tuple[str, str], args: argparse.Namespace) -> dict:
    frames = work / f"frames{size}"
    link_frames(pool, frames, size)
    command = [
        sys.executable,
        __file__,
        "--child",
        "--frames-dir",
        str(frames),
        "--store",
        str(work / f"out{size}" / "anatomy.h5"),
        "--predictor-checkpoint",
        predictor[0],
        "--predictor-loader",
        predictor[1],
        "--batch-size",
        str(args.batch_size),
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True, env=env)
        sampler = TreePssSampler(process.pid)
        sampler.start()
        returncode = process.wait()
        tree_anon = sampler.stop()
        stdout.seek(0)
        stderr.seek(0)
        if returncode != 0:
            raise SystemExit(f"annotate of {size} frames failed (exit {returncode}):\n{stderr.read()[-4000:]}")
        report = json.loads(stdout.read().strip().splitlines()[-1])
    shutil.rmtree(frames)
    return {"frames_in": size, **report, "tree_peak_anon_mb": tree_anon}


def slope_mb_per_1k(rows: list[dict], key: str) -> float:
    x = np.array([row["frames_in"] for row in rows], np.float64) / 1000
    y = np.array([row[key] for row in rows], np.float64)
    return round(float(np.polyfit(x, y, 1)[0]), 3) if len(rows) > 1 else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1000, 5000, 20000], help="frame counts, one process each"
    )
    parser.add_argument("--checkpoint", help="a trained LP-SAM checkpoint (default: the tests' stand-in predictor)")
    parser.add_argument(
        "--stub-size",
        type=int,
        default=128,
        help="input (and store) size of the stand-in predictor (LP-SAM's is 256: about 2.5x slower here)",
    )
    parser.add_argument("--frame-height", type=int, default=150)
    parser.add_argument("--frame-width", type=int, default=200)
    parser.add_argument("--pool", type=int, default=64, help="distinct frame images the frame files link to")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="annotate DataLoader workers")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the annotate process")
    parser.add_argument(
        "--flat-slope",
        type=float,
        default=1.0,
        help="MB per 1000 frames under which a peak counts as flat (1.0: 1 GB per million frames)",
    )
    parser.add_argument("--workdir", type=Path, help="where frames and stores go (default: the system temp folder)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--frames-dir", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--predictor-checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--predictor-loader", help=argparse.SUPPRESS)
    add_common_args(parser, "memory")
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.sizes = [500, 3000]
    run = BenchmarkRun("memory", args)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="anaus-memory-") as tmp:
        work = Path(tmp)
        if args.checkpoint:
            predictor = (str(Path(args.checkpoint).resolve()), LPSAM_LOADER)
        else:
            sys.path.insert(0, str(ROOT / "tests" / "tasks"))
            from stub_lpsam import write_checkpoint

            predictor = (str(write_checkpoint(work / "stub.json", image_size=args.stub_size)), STUB_LOADER)
        pool = write_pool(work / "pool", args.pool, args.frame_height, args.frame_width, seed=0)
        for size in sorted(args.sizes):
            rows.append(measure(size, pool, work, predictor, args))
            row = rows[-1]
            print(
                f"{size:>7} frames: main peak RSS {row['main_peak_mb']:.0f} MB, process tree peak anon PSS {row['tree_peak_anon_mb']} MB, "
                f"{row['frames_per_second']:.0f} frames/s, store {row['store_mb']:.0f} MB",
                flush=True,
            )
    results = {
        "predictor": "lpsam" if args.checkpoint else f"stub{args.stub_size}",
        "sizes": rows,
        "main_slope_mb_per_1k_frames": slope_mb_per_1k(rows, "main_peak_mb"),
        "tree_anon_slope_mb_per_1k_frames": slope_mb_per_1k(rows, "tree_peak_anon_mb")
        if rows[0]["tree_peak_anon_mb"]
        else None,
    }
    peaks = "/".join(f"{row['main_peak_mb']:.0f}" for row in rows)
    counts = "/".join(f"{row['frames_in'] / 1000:g}k" for row in rows)
    slopes = [results["main_slope_mb_per_1k_frames"], results["tree_anon_slope_mb_per_1k_frames"] or 0.0]
    results["flat"] = max(slopes) < args.flat_slope
    tree = "/".join(f"{row['tree_peak_anon_mb']:.0f}" for row in rows if row["tree_peak_anon_mb"])
    verdict = "FLAT" if results["flat"] else f"GROWS (over {args.flat_slope} MB per 1k frames)"
    summary = (
        f"{verdict}: annotate main peak RSS {peaks} MB at {counts} frames, slope {results['main_slope_mb_per_1k_frames']} MB per 1k frames; "
        f"process tree peak anon PSS {tree or 'n/a'} MB, slope {results['tree_anon_slope_mb_per_1k_frames']}; predictor {results['predictor']}"
    )
    run.finish(results, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
