"""Reads/s of the HDF5 anatomy store versus the released code's format, for the same frames.

Builds both formats from the same phantom-like 256 px frames and label maps:

* ``hdf5``: one anatomy store (:class:`anaus_pl.data.anatomy_store.AnatomyStoreWriter`;
  gzip chunks of one frame), read with :class:`~anaus_pl.data.anatomy_store.AnatomyStore`;
* ``released``: a folder of PNG images plus one pickled float32 mask tensor per
  image (``ToTensor()`` of the label PNG, as ``utils/generate_masks_pkls.py`` writes
  them), read as its ``SSLMaskDataset`` does: PIL ``convert("RGB")`` and ``pickle.load``.

Each is read in a random order, directly (``dataset[i]``) and through a
``DataLoader`` (batch 32, shuffled) with 0 and 2 workers; the page cache is warm
(the files were just written), so this is the decode and per-file cost, not the
disk. No augmentation runs: only the storage format differs. The main process
uses one torch thread, as DataLoader workers do (on a CPU shared with other jobs,
two intra-op threads made the batch collation itself 10x slower)::

    python benchmarks/loader.py                 # 2000 frames
    python benchmarks/loader.py --frames 20000 --workdir /scratch/tmp
    python benchmarks/loader.py --quick         # 300 frames
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import to_tensor

from _common import BenchmarkRun, add_common_args

CLASSES = ["organ", "vessel", "lesion", "muscle"]


def phantom_frame(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A speckled B-mode-like frame with a few labelled ellipses, and its uint8 label map."""
    image = cv2.GaussianBlur(rng.rayleigh(40.0, (size, size)).astype(np.float32), (0, 0), 1.2)
    mask = np.zeros((size, size), np.uint8)
    for label in range(1, len(CLASSES) + 1):
        centre = tuple(int(v) for v in rng.integers(size // 6, 5 * size // 6, 2))
        axes = tuple(int(v) for v in rng.integers(size // 16, size // 5, 2))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, label, -1)
    brightness = np.array([1.0, 1.8, 0.4, 0.15, 1.3], np.float32)[mask]
    image = np.clip(image * brightness, 0, 255).astype(np.uint8)
    return image, mask


def build_formats(root: Path, count: int, size: int, seed: int) -> tuple[Path, Path]:
    """Write ``count`` frames as an HDF5 store and in the released layout; return (store, released folder)."""
    from anaus_pl.data.anatomy_store import AnatomyStoreWriter

    rng = np.random.default_rng(seed)
    released = root / "released"
    (released / "img").mkdir(parents=True)
    (released / "masks").mkdir()
    writer = AnatomyStoreWriter(root / "anatomy.h5", CLASSES, size)
    batch: list[tuple[np.ndarray, np.ndarray, str]] = []
    for k in range(count):
        image, mask = phantom_frame(rng, size)
        stem = f"frame{k:06d}"
        cv2.imwrite(str(released / "img" / f"{stem}.png"), image)
        with open(released / "masks" / f"{stem}_gt.pkl", "wb") as handle:
            pickle.dump(to_tensor(Image.fromarray(mask))[0], handle)  # label/255 float32, as the released script
        batch.append((image, mask, stem))
        if len(batch) == 256 or k == count - 1:
            images, masks, sources = (list(column) for column in zip(*batch))
            writer.append(
                np.stack(images),
                np.stack(masks),
                np.full((len(batch), 2), size, np.int32),
                np.ones((len(batch), len(CLASSES)), np.float32),
                sources,
            )
            batch = []
    return writer.finalize(), released


class ReleasedFormat(Dataset):
    """The released pretraining read path without its augmentations: PIL RGB image + pickled mask tensor."""

    def __init__(self, folder: Path) -> None:
        self.pairs = [
            (image, folder / "masks" / f"{image.stem}_gt.pkl") for image in sorted((folder / "img").glob("*.png"))
        ]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, mask_path = self.pairs[index]
        with open(image_path, "rb") as handle:
            image = np.asarray(Image.open(handle).convert("RGB"))
        with open(mask_path, "rb") as handle:
            mask = pickle.load(handle).unsqueeze(0)
        return {"image": image, "mask": mask}


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def direct_reads_per_second(dataset: Dataset, order: np.ndarray, passes: int, warmup: int = 32) -> float:
    """Median over ``passes`` of reading every frame in ``order`` with ``dataset[i]``."""
    for index in order[:warmup]:
        dataset[int(index)]
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        for index in order:
            dataset[int(index)]
        rates.append(len(order) / (time.perf_counter() - start))
    return float(np.median(rates))


def loader_reads_per_second(dataset: Dataset, workers: int, batch_size: int, passes: int, seed: int) -> float:
    """Median over ``passes`` shuffled epochs, worker start-up included."""
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, generator=torch.Generator().manual_seed(seed)
    )
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        frames = sum(len(batch["image"]) for batch in loader)
        rates.append(frames / (time.perf_counter() - start))
    return float(np.median(rates))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workdir", type=Path, help="where to build both formats (default: the system temp folder)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes over all frames; the median is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the main process")
    add_common_args(parser, "loader")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings(
        "ignore", message="The given NumPy array is not writable"
    )  # PIL's read-only arrays, collated as is
    if args.quick:
        args.frames, args.passes = min(args.frames, 300), 1
    run = BenchmarkRun("loader", args)
    from anaus_pl.data.anatomy_store import AnatomyStore

    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="anaus-loader-") as tmp:
        start = time.perf_counter()
        store_path, released_path = build_formats(Path(tmp), args.frames, args.size, args.seed)
        print(f"built {args.frames} frames in both formats in {time.perf_counter() - start:.1f} s", flush=True)
        datasets = {"hdf5": AnatomyStore(store_path), "released": ReleasedFormat(released_path)}
        sizes = {"hdf5": store_path.stat().st_size, "released": folder_bytes(released_path)}
        order = np.random.default_rng(args.seed).permutation(args.frames)
        results: dict[str, dict[str, Any]] = {}
        for name, dataset in datasets.items():
            row: dict[str, Any] = {
                "bytes_per_frame": round(sizes[name] / args.frames),
                "direct_reads_per_second": round(direct_reads_per_second(dataset, order, args.passes), 1),
            }
            for workers in args.workers:
                row[f"dataloader_{workers}_workers_reads_per_second"] = round(
                    loader_reads_per_second(dataset, workers, args.batch_size, args.passes, args.seed), 1
                )
            results[name] = row
            print(name, row, flush=True)
    ratios = {
        key: round(results["hdf5"][key] / results["released"][key], 2)
        for key in results["hdf5"]
        if key.endswith("reads_per_second")
    }
    results["hdf5_over_released"] = {**ratios, "bytes_per_frame": round(sizes["hdf5"] / sizes["released"], 3)}
    parts = [
        f"{key.removesuffix('_reads_per_second').replace('_', ' ')} {results['hdf5'][key]:.0f} vs {results['released'][key]:.0f} "
        f"reads/s ({ratio}x)"
        for key, ratio in ratios.items()
    ]
    summary = (
        f"hdf5 store vs released png+pkl, {args.frames} frames {args.size} px: "
        + "; ".join(parts)
        + f"; disk {results['hdf5']['bytes_per_frame'] / 1024:.0f} vs {results['released']['bytes_per_frame'] / 1024:.0f} KiB/frame"
    )
    run.finish(results, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
