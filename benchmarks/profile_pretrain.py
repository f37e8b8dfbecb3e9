"""Where a pretrain step's time goes beyond the backbone: torch.profiler scopes around its parts.

Labels the step's parts (backbone passes, FPN + region pooling, heads, region draws,
corruption, losses, optimizer, EMA update) with ``record_function`` from the outside,
profiles one step and one backbone-floor step (see ``pretrain.py``), and prints the
forward time per part and the backward time per autograd node kind. Before that it
prints the floating-point operations of a step and of the floor (their ratio bounds the
fraction of floor any implementation of the step can reach) and the step's and the
floor's CPU seconds for two interleaved pairs (no profiler). With ``--precision bf16`` it
first times one matrix product of the heads' size in fp32 and bf16 in the three operand
layouts a linear layer's forward and backward use (where this CPU emulates bf16, see
``anaus_pl.models.matmul_precision``)::

    python benchmarks/profile_pretrain.py                  # fp32, batch 8, 224 px, ResNet-18, K=16, 1 thread
    python benchmarks/profile_pretrain.py --precision bf16 --threads 2

The profiler adds overhead per operator and the machine's load inflates every entry:
read the shares, not the milliseconds.
"""

from __future__ import annotations

import argparse
import collections
import functools
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

import anaus_pl.models.encoders as encoders
import anaus_pl.models.heads as heads
import anaus_pl.models.region_embedder as region_embedder
import anaus_pl.tasks.pretrain as pretrain
from pretrain import BackboneFloor, synthetic_batch

PARTS = [
    (encoders.MultiScaleEncoder, "stages", "backbone passes"),
    (encoders.MultiScaleEncoder, "_pooled_pyramid", "FPN + region pooling"),
    (encoders, "pool_regions", "c5 pooling"),
    (heads.ScaleHeads, "forward", "heads (projectors, predictors)"),
    (pretrain.PretrainTask, "draw_regions", "region draws"),
    (region_embedder, "region_weights", "region weights"),
    (pretrain, "corrupt", "corruption"),
    (pretrain, "region_alignment_loss", "alignment loss"),
    (pretrain, "core_region_loss", "core loss"),
    (pretrain.PretrainTask, "normalize", "normalisation"),
]


def label(owner: object, name: str, text: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def labelled(*args, **kwargs):
        with record_function(f"part: {text}"):
            return original(*args, **kwargs)

    setattr(owner, name, labelled)


def time_matmul_layouts() -> None:
    """ms of ``(256, 4096) x (4096, 256)``-sized products in fp32 and bf16, per operand layout."""
    for dtype in (torch.float32, torch.bfloat16):
        x, weight, grad = (torch.randn(*shape, dtype=dtype) for shape in ((256, 256), (4096, 256), (256, 4096)))
        products = {
            "x @ W.T (forward)": (x, weight.T),
            "g @ W (input gradient)": (grad, weight),
            "g.T @ x (weight gradient)": (grad.T, x),
        }
        for name, (left, right) in products.items():
            left @ right
            start = time.perf_counter()
            for _ in range(3):
                left @ right
            print(f"{str(dtype):15s} {name:28s} {(time.perf_counter() - start) / 3 * 1e3:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.precision == "bf16":
        time_matmul_layouts()
    for owner, name, text in PARTS:
        label(owner, name, text)
    task = pretrain.PretrainTask(
        batch_size=args.batch,
        image_size=args.image_size,
        classes=[],
        regions_per_view=args.k,
        log_images_every_n_steps=0,
    )
    optimizer = torch.optim.SGD([p for p in task.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    batch = synthetic_batch(args.batch, args.image_size, torch.device("cpu"))
    floor = BackboneFloor("resnet18", torch.device("cpu"), True, False)
    views = task.normalize(torch.cat([batch["view1"], batch["view2"]]).float() / 255.0)
    cores = task.normalize(batch["core1"].float() / 255.0)
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")  # noqa: E731

    def step() -> None:
        with autocast(), record_function("step: forward"):
            loss = task.compute_losses(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        with record_function("step: backward"):
            loss.float().backward()
        with record_function("step: optimizer"):
            optimizer.step()
        with record_function("step: EMA update"):
            task.ema.update(task.online, task.target, 0, 1)

    def floor_step() -> None:
        with autocast(), record_function("floor step"):
            floor.step(views, cores)

    step(), floor_step()
    with FlopCounterMode(display=False) as step_flops:
        step()
    with FlopCounterMode(display=False) as floor_flops:
        floor_step()
    step_total, floor_total = step_flops.get_total_flops(), floor_flops.get_total_flops()
    print(
        f"FLOPs (torch.utils.flop_counter): step {step_total / 1e9:.1f} G, floor {floor_total / 1e9:.1f} G: "
        f"the step's work alone bounds the fraction of floor at {floor_total / step_total:.3f}"
    )
    for _ in range(2):
        start = time.process_time()
        step()
        ours = time.process_time() - start
        start = time.process_time()
        floor_step()
        base = time.process_time() - start
        print(f"CPU seconds: step {ours:.2f}, floor {base:.2f}, fraction of floor {base / ours:.3f}")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
        floor_step()
    print("forward parts and step phases (ms, profiled):")
    for event in sorted(prof.key_averages(), key=lambda e: -e.cpu_time_total):
        if event.key.startswith(("part: ", "step", "floor")):
            print(f"  {event.key:40s} {event.cpu_time_total / 1e3:9.1f}  ({event.count} calls)")
    print("backward by autograd node (ms, profiled; step and floor together):")
    nodes: collections.Counter = collections.Counter()
    for event in prof.key_averages():
        if event.key.startswith("autograd::engine::evaluate_function: "):
            nodes[event.key.split(": ", 1)[1]] += event.cpu_time_total / 1e3
    for node, ms in nodes.most_common(10):
        print(f"  {node:40s} {ms:9.1f}")


if __name__ == "__main__":
    main()
