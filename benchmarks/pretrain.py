"""Train-step throughput and peak memory: this implementation vs the released algorithm's cost.

``ours``: one backbone pass per branch for all scales, one EMA update per step,
vectorised corruption. ``released``: the same networks and losses run the way the
released code runs them (see docs/PAPER_FIDELITY.md): the backbone
and the whole FPN (3x3 output convolutions on full maps) rerun once per scale for the
views and again for the two copies of the "com" crop, the label maps turned into
cell masks per scale through a 256-id one-hot at full resolution
(``convert_binary_mask``) and K ids redrawn for every network call (``sample_masks``),
the EMA update inside the scale loop (four per step), the com corruption redrawn per
scale with Python loops over blocks and rectangles (numpy, per image, 3 channels).

``floor``: the backbone work of the algorithm and nothing else: a plain torchvision
model of the same architecture (with its classifier) doing forward and backward on the
3B online images (a batch of the two views, 2B, and one of the corrupted cores, B: the
passes the step makes, so batch-norm statistics cover the same images) and forward on
the 3B target images, at the same batch, size, precision and memory format. No FPN,
region pooling, heads, losses, corruption, optimizer or EMA. ``fraction of floor`` =
floor step time / our step time: 1.0 would mean everything but the backbone is free.

Our step and the floor are timed interleaved in one process (ours, floor, ours, floor,
...), so load drifts on a shared machine hit both, and the fraction is the median of
the per-pair ratios. ``released`` runs in its own process. Besides wall-clock
images/s, each mode reports images per CPU-second of its process (``time.process_time``):
on a machine shared with other jobs the wall-clock ratio drifts with the load while the
CPU-time ratio measures the work each mode does. The peak memory of ``ours`` is that of
its process, which also ran the (smaller) floor. Writes
``benchmarks/results/pretrain.json`` and prints one line::

    python benchmarks/pretrain.py                 # batch 8, 224 px, ResNet-18, K=16, fp32 and bf16
    python benchmarks/pretrain.py --compile       # the same with torch.compile of the networks (and of the floor)
    python benchmarks/pretrain.py --quick         # toy sizes (batch 2, 64 px, K=4, fp32): checks the script runs
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from _common import BenchmarkRun, add_common_args, resolve_device, synchronize, timing_stats
from anaus_pl.data.corruption import CorruptionConfig
from anaus_pl.losses.alignment import region_alignment_loss
from anaus_pl.losses.core_region import core_region_loss
from anaus_pl.models.encoders import scale_sizes
from anaus_pl.models.regions import pool_regions
from anaus_pl.tasks.pretrain import PretrainTask, RegionEmbedder


def synthetic_batch(batch: int, size: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for v in ("1", "2"):
        out[f"view{v}"] = torch.randint(0, 256, (batch, 1, size, size), generator=g, dtype=torch.uint8)
        out[f"core{v}"] = torch.randint(0, 256, (batch, 1, size, size), generator=g, dtype=torch.uint8)
        labels = torch.zeros(batch, size, size, dtype=torch.uint8)
        # five regions and background: the 6 ids of the embedded default's label maps (5 classes)
        for i, (lo, hi) in enumerate([(0.1, 0.5), (0.3, 0.8), (0.6, 0.95), (0.05, 0.2), (0.75, 0.9)], start=1):
            labels[:, int(lo * size) : int(hi * size), int(lo * size) : int(hi * size)] = i
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
                    patch = image[channel, y : y + block, x : x + block].reshape(-1)
                    image[channel, y : y + block, x : x + block] = rng.permutation(patch).reshape(block, block)
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
                image[:, y : y + bh, x : x + bw] = rng.random((bh, bw))
    return torch.from_numpy(out[:, :1]).to(images.device)


def released_cell_masks(masks: torch.Tensor, size: int, max_ids: int = 256) -> torch.Tensor:
    """The released ``convert_binary_mask``: a 256-id one-hot at full resolution, pooled to the scale,
    the majority id per cell, and that id's hard one-hot: ``(B, 256, size * size)``."""
    one_hot = torch.eq(torch.arange(max_ids, device=masks.device).view(1, -1, 1, 1), masks[:, None]).float()
    majority = F.adaptive_avg_pool2d(one_hot, size).flatten(2).argmax(1)
    return torch.eye(max_ids, device=masks.device)[majority].permute(0, 2, 1)


def released_sample(cells: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The released ``sample_masks`` (redrawn for every network call): K ids uniform among the ids
    owning a cell, their hard masks divided by their cell counts. Returns ``(weights (B, K, P^2), ids)``."""
    exists = (cells.sum(-1) > 0).float()
    ids = torch.distributions.Categorical(logits=torch.log(exists + 1e-11)).sample((k,)).T
    chosen = torch.gather(cells, 1, ids[..., None].expand(-1, -1, cells.shape[-1]))
    return chosen / chosen.sum(-1, keepdim=True).clamp_min(1.0), ids


def full_map_embed(network: RegionEmbedder, images: torch.Tensor, weights: torch.Tensor, scale: str) -> torch.Tensor:
    """Projected region embeddings the released way: the whole backbone + FPN maps, then pooling."""
    return network.projectors(scale, pool_regions(network.encoder(images)[scale], weights))


def released_step(task: PretrainTask, batch: dict[str, torch.Tensor], rng: np.random.Generator) -> torch.Tensor:
    """One step with the released code's costs (see the module docstring)."""
    b, k = batch["view1"].shape[0], task.hparams.regions_per_view
    views = task.normalize(torch.cat([batch["view1"], batch["view2"]]).float() / 255.0)
    core = batch["core1"].float() / 255.0
    masks = torch.cat([batch["mask1"], batch["mask2"]]).long()
    total = torch.zeros((), device=views.device)
    valid = torch.ones(b, k, dtype=torch.bool, device=views.device)
    for scale, size in scale_sizes(task.scales, views.shape[-1]).items():
        cells = released_cell_masks(masks, size)
        online_weights, online_ids = released_sample(cells, k)
        predictions = task.predictors(scale, full_map_embed(task.online, views, online_weights, scale))
        task.ema.update(task.online, task.target, 0, 1)  # inside the scale loop: four EMA updates per step
        with torch.no_grad():
            targets = full_map_embed(task.target, views, released_sample(cells, k)[0], scale)
        total = (
            total
            + region_alignment_loss(
                predictions[:b], predictions[b:], targets[:b], targets[b:], online_ids[:b], valid
            ).loss
        )
        # the "com" branch: corruption redrawn per scale, both copies of the batch pooled with the view masks
        damaged = task.normalize(looped_corruption(core, task.corruption, rng))
        online = task.predictors(
            scale, full_map_embed(task.online, torch.cat([damaged, damaged]), released_sample(cells, k)[0], scale)
        )
        with torch.no_grad():
            clean = task.normalize(core)
            target = full_map_embed(task.target, torch.cat([clean, clean]), released_sample(cells, k)[0], scale)
        total = total + core_region_loss(online, target, None, "mse")
    return total


class BackboneFloor:
    """The step's backbone work alone: a plain torchvision model, online forward + backward
    on the views (2B) and the cores (B), target forward on both (see the module docstring)."""

    def __init__(self, arch: str, device: torch.device, channels_last: bool, compile_networks: bool) -> None:
        self.online = getattr(torchvision.models, arch)().to(device)
        if channels_last:
            self.online.to(memory_format=torch.channels_last)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        if compile_networks:
            self.online.compile()
            self.target.compile()

    def step(self, views: torch.Tensor, cores: torch.Tensor) -> None:
        self.online.zero_grad(set_to_none=True)
        (self.online(views).float().mean() + self.online(cores).float().mean()).backward()
        with torch.no_grad():
            self.target(views)
            self.target(cores)


def timed(work: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    work()
    synchronize(device)
    return time.perf_counter() - start, time.process_time() - cpu_start


def peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {
            "peak_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
            "peak_memory_kind": "cuda max_memory_allocated",
        }
    return {
        "peak_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_memory_kind": "process peak RSS",
    }


def throughput(batch: int, times: list[tuple[float, float]]) -> dict:
    wall, cpu = [t[0] for t in times], [t[1] for t in times]
    return {
        "images_per_s": batch / float(np.median(wall)),
        "step": timing_stats(wall),
        "images_per_cpu_s": batch / float(np.median(cpu)),
        "step_cpu": timing_stats(cpu),
    }


def run_mode(mode: str, precision: str, args: argparse.Namespace) -> dict:
    """Median train-step times of one mode at one precision (run in a fresh process).

    ``ours`` is timed interleaved with the backbone floor; ``released`` alone.
    """
    torch.manual_seed(0)
    device = resolve_device(args.device)
    task = PretrainTask(
        batch_size=args.batch,
        image_size=args.image_size,
        classes=[],
        arch=args.arch,
        regions_per_view=args.k,
        log_images_every_n_steps=0,
        compile=args.compile and mode == "ours",
    ).to(device)
    optimizer = torch.optim.SGD([p for p in task.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    batch = synthetic_batch(args.batch, args.image_size, device)
    rng = np.random.default_rng(0)
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")  # noqa: E731

    def train_step() -> None:
        with autocast():
            loss = task.compute_losses(batch)["loss"] if mode == "ours" else released_step(task, batch, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.float().backward()
        optimizer.step()
        if mode == "ours":
            task.ema.update(task.online, task.target, 0, 1)  # one EMA update at the base momentum

    floor = BackboneFloor(args.arch, device, task.hparams.channels_last, args.compile) if mode == "ours" else None
    views = task.normalize(torch.cat([batch["view1"], batch["view2"]]).float() / 255.0)
    cores = task.normalize(batch["core1"].float() / 255.0)

    def floor_step() -> None:
        with autocast():
            floor.step(views, cores)

    ours, floors = [], []
    for _ in range(args.warmup + args.steps):
        ours.append(timed(train_step, device))
        if floor is not None:
            floors.append(timed(floor_step, device))
    ours, floors = ours[args.warmup :], floors[args.warmup :]
    result = {"mode": mode, "precision": precision, **throughput(args.batch, ours), **peak_memory(device)}
    if floor is not None:
        result["floor"] = throughput(args.batch, floors)
        result["fraction_of_floor"] = round(float(np.median([f[0] / o[0] for f, o in zip(floors, ours)])), 3)
        result["cpu_time_fraction_of_floor"] = round(float(np.median([f[1] / o[1] for f, o in zip(floors, ours)])), 3)
    return result


def measure_in_child(mode: str, precision: str, args: argparse.Namespace) -> dict:
    """Run one (mode, precision) in its own process so its peak memory is its own."""
    passed = {
        k: v
        for k, v in vars(args).items()
        if k not in ("mode", "precision", "precisions", "out", "quick", "no_released")
    }
    argv = [sys.executable, __file__, "--mode", mode, "--precision", precision]
    argv += [
        f"--{k.replace('_', '-')}" + ("" if isinstance(v, bool) else f"={v}")
        for k, v in passed.items()
        if v is not False
    ]
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"pretrain benchmark child ({mode}, {precision}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "pretrain")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--k", type=int, default=16, help="regions per view")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads on CPU")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the networks (ours and the floor; not the released-cost model)",
    )
    parser.add_argument(
        "--no-released", action="store_true", help="time ours and the floor only (no released-cost model)"
    )
    parser.add_argument("--mode", choices=["ours", "released"], help=argparse.SUPPRESS)
    parser.add_argument("--precision", choices=["fp32", "bf16"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.mode:  # child process: one measurement, printed as JSON
        print(json.dumps(run_mode(args.mode, args.precision, args)))
        return 0
    if args.quick:  # the same comparison at toy sizes: a smoke run of the method, not a number to quote
        args.batch, args.image_size, args.k, args.steps, args.warmup, args.precisions = 2, 64, 4, 1, 1, ["fp32"]
    device = resolve_device(args.device)
    run = BenchmarkRun("pretrain", args, device)
    results: dict[str, dict] = {}
    parts = []
    for precision in args.precisions:
        ours = measure_in_child("ours", precision, args)
        results[precision] = {
            "ours": ours,
            "fraction_of_floor": ours["fraction_of_floor"],
            "cpu_time_fraction_of_floor": ours["cpu_time_fraction_of_floor"],
        }
        line = (
            f"{precision} ours {ours['images_per_s']:.2f} img/s {ours['peak_memory_mib']:.0f} MiB, fraction of floor "
            f"{ours['fraction_of_floor']:.2f} (floor {ours['floor']['images_per_s']:.2f} img/s; CPU time {ours['cpu_time_fraction_of_floor']:.2f})"
        )
        if not args.no_released:
            released = measure_in_child("released", precision, args)
            speedup = ours["images_per_s"] / released["images_per_s"]
            cpu_speedup = ours["images_per_cpu_s"] / released["images_per_cpu_s"]
            results[precision].update(
                released=released, speedup=round(speedup, 2), cpu_time_speedup=round(cpu_speedup, 2)
            )
            line += (
                f" vs released-cost {released['images_per_s']:.2f} img/s {released['peak_memory_mib']:.0f} MiB = {speedup:.1f}x "
                f"(CPU time {cpu_speedup:.1f}x)"
            )
        parts.append(line)
        print(f"pretrain: {line}", flush=True)  # each precision as it finishes (a long run on a loaded machine)
    results["scales"] = ["c5", "p4", "p3", "p2"]
    run.finish(results, f"{args.arch} batch {args.batch} {args.image_size}px K={args.k}: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
