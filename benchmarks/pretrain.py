"""Train-step throughput and peak memory: this implementation vs the released algorithm's cost.

``ours``: one backbone pass per branch for all scales, one EMA update per step,
vectorised corruption. ``released``: the same networks and losses run the way the
released code runs them: the backbone and heads rerun once per scale, the EMA
update inside the scale loop (four per step), the core corruption redrawn per scale
with Python loops over blocks and rectangles (numpy, per image, 3 channels).

Each mode runs in its own process (clean peak memory). Writes JSON and prints one line:

    python benchmarks/pretrain.py --out runs/benchmarks/pretrain.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from anaus_pl.data.corruption import CorruptionConfig
from anaus_pl.losses.alignment import region_alignment_loss
from anaus_pl.losses.core_region import core_region_loss
from anaus_pl.tasks.pretrain import PretrainTask


def synthetic_batch(batch: int, size: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for v in ("1", "2"):
        out[f"view{v}"] = torch.randint(0, 256, (batch, 1, size, size), generator=g, dtype=torch.uint8)
        out[f"core{v}"] = torch.randint(0, 256, (batch, 1, size, size), generator=g, dtype=torch.uint8)
        labels = torch.zeros(batch, size, size, dtype=torch.uint8)
        for i, (lo, hi) in enumerate([(0.1, 0.5), (0.3, 0.8), (0.6, 0.95)], start=1):
            labels[:, int(lo * size):int(hi * size), int(lo * size):int(hi * size)] = i
        out[f"mask{v}"] = labels
        out[f"core_mask{v}"] = labels.clone()
    return {k: t.to(device) for k, t in out.items()}


def looped_corruption(images: torch.Tensor, config: CorruptionConfig, rng: np.random.Generator) -> torch.Tensor:
    """The released code's corruption cost: per image, Python loops over blocks and rectangles, 3 channels."""
    out = images.detach().cpu().numpy().repeat(3, axis=1).copy()
    _, c, h, w = out.shape
    block = max(5, h // 20)
    for image in out:
        if rng.random() < config.shuffle_p:
            for _ in range(h * w // block**2):
                y, x = rng.integers(0, h - block), rng.integers(0, w - block)
                for channel in range(c):
                    patch = image[channel, y:y + block, x:x + block].reshape(-1)
                    image[channel, y:y + block, x:x + block] = rng.permutation(patch).reshape(block, block)
        if rng.random() < config.nonlinear_p:
            t = np.linspace(0, 1, 1000)
            p1, p2 = rng.random(2), rng.random(2)
            xs = 3 * (1 - t) ** 2 * t * p1[0] + 3 * (1 - t) * t**2 * p2[0] + t**3
            ys = 3 * (1 - t) ** 2 * t * p1[1] + 3 * (1 - t) * t**2 * p2[1] + t**3
            order = np.argsort(xs)
            image[:] = np.interp(image, xs[order], ys[order])
        for _ in range(config.inpaint_trials):
            if rng.random() < config.inpaint_p:
                bh, bw = rng.integers(h // 10, h // 5), rng.integers(w // 10, w // 5)
                y, x = rng.integers(3, h - bh - 3), rng.integers(3, w - bw - 3)
                image[:, y:y + bh, x:x + bw] = rng.random((bh, bw))
    return torch.from_numpy(out[:, :1]).to(images.device)


def released_step(task: PretrainTask, batch: dict[str, torch.Tensor], rng: np.random.Generator) -> torch.Tensor:
    """One step with the released code's costs (see the module docstring)."""
    b = batch["view1"].shape[0]
    views = torch.cat([batch["view1"], batch["view2"]]).float() / 255.0
    masks = [batch[k].long() for k in ("mask1", "mask2", "core_mask1", "core_mask2")]
    num_ids = int(max(m.max() for m in masks)) + 1
    total = torch.zeros((), device=views.device)
    all_scales = task.scales
    for scale in all_scales:
        task.scales = [scale]
        r1, r2, slots = task.draw_regions(masks[0], masks[1], views.shape[-1], num_ids)
        both = {scale: (torch.cat([r1[scale][0], r2[scale][0]]), torch.cat([r1[scale][1], r2[scale][1]]))}
        predictions, targets = task.embed(views, both)  # the whole backbone + FPN again for this scale
        task.update_target(task.momentum)
        ids, valid = slots[scale]
        total = total + region_alignment_loss(predictions[scale][:b], predictions[scale][b:], targets[scale][:b], targets[scale][b:], ids, valid).loss
        damaged = looped_corruption(batch["core1"].float() / 255.0, task.corruption, rng)
        c1, c2, core_slots = task.draw_regions(masks[2], masks[3], damaged.shape[-1], num_ids)
        online = task.predictors(scale, task.online(task.normalize(damaged), c1)[scale])
        with torch.no_grad():
            target = task.target(task.normalize(batch["core2"].float() / 255.0), c2)[scale]
        total = total + core_region_loss(online, target, core_slots[scale][1], "mse")
    task.scales = all_scales
    return total


def run_mode(mode: str, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    device = torch.device(args.device)
    task = PretrainTask(arch=args.arch, regions_per_view=args.k, log_images_every_n_steps=0).to(device)
    optimizer = torch.optim.SGD([p for p in task.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    batch = synthetic_batch(args.batch, args.image_size, device)
    rng = np.random.default_rng(0)
    times = []
    for step in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = task.compute_losses(batch)["loss"] if mode == "ours" else released_step(task, batch, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if mode == "ours":
            task.update_target(task.momentum)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    step_s = float(np.median(times))
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "images_per_s": args.batch / step_s, "step_s": step_s, "peak_memory_mib": peak,
            "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS", "steps": len(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["ours", "released", "both"], default="both")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/pretrain.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.mode != "both":
        print(json.dumps(run_mode(args.mode, args)))
        return 0
    results = {}
    for mode in ("ours", "released"):
        argv = [sys.executable, __file__, "--mode", mode] + [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("mode", "out")]
        done = subprocess.run(argv, check=True, capture_output=True, text=True, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    report = {
        "config": {k: v for k, v in vars(args).items() if k not in ("mode", "out")} | {"scales": ["c5", "p4", "p3", "p2"], "torch": torch.__version__, "cpu": platform.processor() or platform.machine()},
        "results": results,
        "speedup": results["ours"]["images_per_s"] / results["released"]["images_per_s"],
        "load_average_1min": os.getloadavg()[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    o, r = results["ours"], results["released"]
    print(f"pretrain step ({args.device}, {args.arch}, batch {args.batch}, {args.image_size}px, K={args.k}, 4 scales): "
          f"ours {o['images_per_s']:.2f} img/s {o['peak_memory_mib']:.0f} MiB | released-cost {r['images_per_s']:.2f} img/s "
          f"{r['peak_memory_mib']:.0f} MiB | speedup {report['speedup']:.1f}x -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
