"""The prepared device check: every stage for a few bf16 steps on the phantom, then the pretrain benchmark.

Run through ``benchmarks/gpu_check.sh`` (which does ``make install data`` first on a GPU machine).
Stages run one after another as CLI subprocesses, each measured by
:class:`stage_probe.StageProbe` (images/s after the first batch, peak memory); pretrain uses DDP
over two GPUs when two are visible. The pretrain benchmark runs at batch 64, 224 px, fp32 and bf16
(with ``--compile`` too, where the platform compiles). Ends with one table: stage, seconds,
images/s, peak memory, fraction of floor. ``--cpu``: the same steps at tiny sizes on the CPU
(a dry run of the logic; its numbers mean nothing). Stages past the time budget are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stage:
    """One step of the check: a command and where its measurement lands."""

    name: str
    argv: list[str]
    probe: Path | None = None  # StageProbe JSON
    benchmark: Path | None = None  # benchmarks/pretrain.py JSON
    timeout_s: int = 120
    result: dict = field(default_factory=dict)


def probe_callback(out: Path) -> str:
    return "--trainer.callbacks+=" + json.dumps(
        {"class_path": "stage_probe.StageProbe", "init_args": {"out": str(out)}}
    )


def evaluate_config(out: Path, encoder: Path, cpu: bool) -> Path:
    """The evaluate stage cut to one classification and one segmentation task, 2 folds, 1 epoch, bf16."""
    config = yaml.safe_load((ROOT / "stages" / "evaluate.yaml").read_text())
    tasks = [next(t for t in config["tasks"] if t["kind"] == kind) for kind in ("classification", "segmentation")]
    config.update(
        tasks=[{**t, "epochs": 1} for t in tasks],
        inits=[f"encoder:{encoder}"],
        n_folds=2,
        out_dir=str(out / "evaluate"),
        accelerator="cpu" if cpu else "gpu",
        devices=1,
        precision="bf16-mixed",
    )
    path = out / "evaluate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def plan(out: Path, cpu: bool, gpus: int, python: str = sys.executable) -> list[Stage]:
    """The check's stages for a GPU machine with ``gpus`` devices, or the tiny CPU dry run."""
    cli = [python, "-m", "anaus_pl.cli"]
    device = ["--trainer.accelerator=cpu"] if cpu else ["--trainer.accelerator=gpu"]
    common = [
        "--trainer.precision=bf16-mixed",
        f"--trainer.logger.init_args.save_dir={out / 'runs'}",
        "--trainer.enable_progress_bar=false",
    ]
    steps = 2 if cpu else 10
    checkpoint = out / "runs" / "adapt" / "default" / "checkpoints" / "last.ckpt"
    store, encoder = out / "anatomy.h5", out / "encoder"
    pretrain_devices = 1 if cpu or gpus < 2 else 2
    pretrain = [*cli, "fit", "--config", "stages/pretrain.yaml"]
    if not cpu:
        pretrain += ["--config", f"configs/trainer/{'ddp' if pretrain_devices > 1 else 'gpu'}.yaml"]
    pretrain += [
        *device,
        f"--trainer.devices={pretrain_devices}",
        *common,
        f"--trainer.max_steps={steps}",
        "--trainer.max_epochs=1",
        "--trainer.max_time=null",
        f"--data.init_args.store_path={store}",
        f"--model.init_args.export_dir={encoder}",
        probe_callback(out / "pretrain.json"),
    ]
    if cpu:
        pretrain += ["--data.init_args.batch_size=4", "--model.init_args.regions_per_view=4"]
    bench = [python, "benchmarks/pretrain.py", "--no-released", "--precisions", "fp32", "bf16"]
    bench += (
        ["--device=cpu", "--batch=2", "--image-size=64", "--k=4", "--warmup=1", "--steps=1"]
        if cpu
        else ["--device=cuda", "--batch=64", "--image-size=224", "--steps=5"]
    )
    stages = [
        Stage(
            "adapt",
            [
                *cli,
                "fit",
                "--config",
                "stages/adapt.yaml",
                *device,
                "--trainer.devices=1",
                *common,
                f"--trainer.max_steps={steps}",
                "--trainer.max_epochs=1",
                probe_callback(out / "adapt.json"),
            ],
            probe=out / "adapt.json",
        ),
        Stage(
            "annotate",
            [
                *cli,
                "annotate",
                "--config",
                "stages/annotate.yaml",
                *device,
                "--trainer.devices=1",
                *common,
                f"--model.init_args.lpsam_checkpoint={checkpoint}",
                f"--store.path={store}",
                f"--trainer.limit_predict_batches={2 if cpu else 8}",
                probe_callback(out / "annotate.json"),
            ],
            probe=out / "annotate.json",
        ),
        Stage(
            f"pretrain ({pretrain_devices} {'process' if pretrain_devices == 1 else 'DDP processes'})",
            pretrain,
            probe=out / "pretrain.json",
            timeout_s=180,
        ),
        Stage(
            "evaluate (2 tasks x 2 folds, 1 epoch)",
            [*cli, "evaluate", "--config", str(evaluate_config(out, encoder / "encoder.pt", cpu))],
            timeout_s=180,
        ),
        Stage(
            "pretrain benchmark", [*bench, f"--out={out / 'bench.json'}"], benchmark=out / "bench.json", timeout_s=180
        ),
    ]
    if cpu:  # a loaded 2-core CPU takes minutes to start each stage
        for stage in stages:
            stage.timeout_s = 900
    else:  # torch.compile: minutes of compilation on a CPU, so only on the GPU
        stages.append(
            Stage(
                "pretrain benchmark --compile",
                [*bench, "--compile", "--precisions", "bf16", f"--out={out / 'bench_compile.json'}"],
                benchmark=out / "bench_compile.json",
                timeout_s=240,
            )
        )
    return stages


def run(stages: list[Stage], budget_s: float, log: Path) -> None:
    """Run the stages in order; a stage that fails or would start past the budget is recorded, the rest go on."""
    start = time.perf_counter()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]),
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "JSONARGPARSE_DEPRECATION_WARNINGS": "off",
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as sink:
        for stage in stages:
            left = budget_s - (time.perf_counter() - start)
            if left < 20:
                stage.result = {"status": "skipped: time budget spent"}
                continue
            print(f"[gpu_check] {stage.name}: {' '.join(stage.argv)}", file=sink, flush=True)
            began = time.perf_counter()
            try:
                done = subprocess.run(
                    stage.argv,
                    cwd=ROOT,
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    timeout=min(stage.timeout_s, left),
                )
                status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
            except subprocess.TimeoutExpired:
                status = "timed out"
            stage.result = {"status": status, "seconds": round(time.perf_counter() - began, 1)}
            for path in (stage.probe, stage.benchmark):
                if path is not None and path.exists():
                    stage.result["measured"] = json.loads(path.read_text())
            print(f"[gpu_check] {stage.name}: {status} in {stage.result['seconds']} s", flush=True)


def table_rows(stages: list[Stage]) -> list[list[str]]:
    """One row per stage (the benchmark: one per precision): stage, status, seconds, images/s, peak memory, fraction of floor."""
    fmt = lambda value, spec: "-" if value is None else format(value, spec)  # noqa: E731
    rows = []
    for stage in stages:
        result, measured = stage.result, stage.result.get("measured", {})
        seconds = fmt(result.get("seconds"), ".0f")
        if stage.benchmark is not None and measured:
            for precision, entry in measured["results"].items():
                if isinstance(entry, dict) and "ours" in entry:
                    ours = entry["ours"]
                    rows.append(
                        [
                            f"{stage.name} {precision}",
                            result["status"],
                            seconds,
                            fmt(ours["images_per_s"], ".1f"),
                            f"{ours['peak_memory_mib']:.0f} MiB ({ours['peak_memory_kind']})",
                            fmt(entry["fraction_of_floor"], ".2f"),
                        ]
                    )
            continue
        memory = f"{measured['peak_memory_mib']:.0f} MiB ({measured['peak_memory_kind']})" if measured else "-"
        rows.append(
            [
                stage.name,
                result.get("status", "not run"),
                seconds,
                fmt(measured.get("images_per_s"), ".1f"),
                memory,
                "-",
            ]
        )
    return rows


def markdown_table(rows: list[list[str]]) -> str:
    header = ["stage", "status", "seconds", "images/s", "peak memory", "fraction of floor"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="dry run of the same logic on the CPU at tiny sizes")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "runs" / "gpu_check", help="where runs, logs and the table go"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="STAGE",
        help="run only the stages whose names start with these words (e.g. adapt, 'pretrain benchmark')",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        help="stop starting stages after this many seconds (default 480 on GPUs, 3600 for --cpu)",
    )
    args = parser.parse_args()
    import torch

    gpus = torch.cuda.device_count()
    if not args.cpu and gpus == 0:
        raise SystemExit("gpu_check: no CUDA device visible to torch; use --cpu for the dry run")
    args.out.mkdir(parents=True, exist_ok=True)
    stages = plan(args.out.resolve(), args.cpu, gpus)
    if args.only:
        stages = [s for s in stages if any(s.name.startswith(word) for word in args.only)]
    run(stages, args.budget_s or (3600 if args.cpu else 480), args.out / "gpu_check.log")
    device = "CPU dry run (tiny sizes; not a measurement)" if args.cpu else f"{gpus} x {torch.cuda.get_device_name(0)}"
    table = markdown_table(table_rows(stages))
    (args.out / "summary.md").write_text(f"{device}\n\n{table}\n")
    print(f"\n{device}\n\n{table}\n\n(log: {args.out / 'gpu_check.log'})")
    return 0 if all(s.result.get("status") == "ok" for s in stages) else 1


if __name__ == "__main__":
    sys.exit(main())
