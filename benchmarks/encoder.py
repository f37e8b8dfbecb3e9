"""Inference latency of exported encoders: ms per image and images/s.

The encoder a user deploys is the pretrain stage's export (``encoder.pt`` +
``encoder.json``, :mod:`anaus_pl.models.export`). This times its forward pass
on 224 px inputs at batch 1 and 32, in fp32 (NCHW) and in bf16 autocast with
channels-last memory format, after a warm-up, as median and 90th percentile
over repeats. Latency does not depend on the weights, so without ``--encoder``
randomly initialised torchvision backbones of the same architecture are timed::

    python benchmarks/encoder.py                                  # resnet18, resnet50, random weights
    python benchmarks/encoder.py --encoder runs/pretrain/default  # the exported encoder(s)
    python benchmarks/encoder.py --quick                          # resnet18, fewer repeats: under a minute on 2 CPU cores
    python benchmarks/encoder.py --threads 1                      # steadier numbers on a CPU shared with other jobs

The paper's deployment figure is 0.45 ms per image for ResNet-18 on an RTX 4090.
On CUDA every timed call ends with ``torch.cuda.synchronize`` and cuDNN
autotuning runs during the warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import torch
from torch import nn

from _common import BenchmarkRun, add_common_args, resolve_device, synchronize, timing_stats

PAPER_MS_PER_IMAGE = {"resnet18": 0.45}  # RTX 4090, batch size not stated
MODES = {
    "fp32": (None, torch.contiguous_format),
    "bf16-cl": (torch.bfloat16, torch.channels_last),
    "fp32-cl": (None, torch.channels_last),
}


def load_models(args: argparse.Namespace) -> list[tuple[str, nn.Module]]:
    """The exported encoders given with ``--encoder``, else random backbones of ``--arch``."""
    from anaus_pl.models.export import build_backbone, load_encoder

    if args.encoder:
        models = []
        for path in args.encoder:
            model, meta = load_encoder(path)
            if meta.input_size != args.size:
                print(f"note: {path} was exported for {meta.input_size} px; timing at --size {args.size}")
            models.append((f"{meta.arch} ({path})", model))
        return models
    return [(arch, build_backbone(arch)) for arch in args.arch]


def time_forward(model: nn.Module, batch: int, mode: str, args: argparse.Namespace, device: torch.device) -> dict:
    """Warm up, then time ``repeats`` forward passes of one batch."""
    dtype, memory_format = MODES[mode]
    model = model.to(device=device, memory_format=memory_format).eval()
    images = torch.rand(batch, 3, args.size, args.size, device=device).to(memory_format=memory_format)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    seconds = []
    with torch.inference_mode(), autocast:
        for step in range(args.warmup + args.repeats):
            synchronize(device)
            start = time.perf_counter()
            model(images)
            synchronize(device)
            if step >= args.warmup:
                seconds.append(time.perf_counter() - start)
    batch_stats = timing_stats(seconds)
    per_image = {key: round(value / batch, 4) for key, value in batch_stats.items() if key.endswith("_ms")}
    return {
        "batch": batch,
        "mode": mode,
        "ms_per_batch": batch_stats,
        "ms_per_image": per_image,
        "images_per_second": round(1e3 * batch / batch_stats["median_ms"], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--encoder",
        action="append",
        default=[],
        metavar="PATH",
        help="an encoder export (folder or encoder.pt); repeatable; replaces --arch",
    )
    parser.add_argument(
        "--arch",
        nargs="+",
        help="torchvision backbones to time with random weights (default resnet18 resnet50; --quick: resnet18)",
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=sorted(MODES),
        default=["fp32", "bf16-cl"],
        help="fp32: NCHW float32; bf16-cl: bf16 autocast, channels-last; fp32-cl: float32, channels-last",
    )
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, help="torch intra-op threads on CPU (default: torch's choice)")
    add_common_args(parser, "encoder")
    args = parser.parse_args()
    if args.quick:
        args.warmup, args.repeats = 2, 5
    args.arch = args.arch or (["resnet18"] if args.quick else ["resnet18", "resnet50"])
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    run = BenchmarkRun("encoder", args, device)

    results = []
    for name, model in load_models(args):
        for mode in args.modes:
            for batch in args.batch_sizes:
                row = {"model": name, **time_forward(model, batch, mode, args, device)}
                results.append(row)
                print(
                    f"{name:>10} {mode:>7} batch {batch:>3}: {row['ms_per_image']['median_ms']:9.3f} ms/image "
                    f"(p90 {row['ms_per_image']['p90_ms']:.3f}), {row['images_per_second']:8.1f} images/s",
                    flush=True,
                )
    best = {}
    for row in results:
        arch = row["model"].split(" ")[0]
        if arch not in best or row["ms_per_image"]["median_ms"] < best[arch]["ms_per_image"]["median_ms"]:
            best[arch] = row
    parts = []
    for arch, row in best.items():
        paper = f" (paper {PAPER_MS_PER_IMAGE[arch]} on RTX 4090)" if arch in PAPER_MS_PER_IMAGE else ""
        parts.append(
            f"{arch} {row['ms_per_image']['median_ms']:.3f} ms/image at batch {row['batch']} {row['mode']}{paper}"
        )
    run.finish(results, "best " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
