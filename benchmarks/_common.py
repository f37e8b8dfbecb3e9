"""What every benchmark script shares: the machine it ran on, timing statistics, the JSON result, the summary line.

A script does::

    parser = argparse.ArgumentParser(...)
    add_common_args(parser, "encoder")          # --quick, --out
    args = parser.parse_args()
    run = BenchmarkRun("encoder", args, device)  # notes the machine and its load average now
    ...
    run.finish(results, "resnet18 b1 fp32 3.1 ms/img ...")

which writes ``benchmarks/results/<name>.json`` (settings, machine, wall time,
results) and prints ``<name>: <summary>``. Run as a script, this module prints
the summary line of every result in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


def add_common_args(parser: argparse.ArgumentParser, name: str) -> None:
    """``--quick`` (a smaller run that finishes in about a minute on 2 CPU cores) and ``--out``."""
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes and fewer repeats (about a minute on 2 CPU cores)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / f"{name}.json", help="where the JSON result goes")


def resolve_device(choice: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch; use --device cpu or auto")
    return torch.device(choice)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so a wall-clock reading covers them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU count, torch version, device, and the load average when the benchmark started."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "load_average_start": [round(v, 2) for v in os.getloadavg()],
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def timing_stats(seconds: Sequence[float]) -> dict[str, float]:
    """Median, 90th percentile and minimum of repeated timings, in milliseconds."""
    values = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "median_ms": round(float(np.median(values)), 4),
        "p90_ms": round(float(np.percentile(values, 90)), 4),
        "min_ms": round(float(values.min()), 4),
        "repeats": int(values.size),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class BenchmarkRun:
    """One benchmark invocation: records the machine at start, writes the result at the end."""

    def __init__(self, name: str, args: argparse.Namespace, device: torch.device | str = "cpu") -> None:
        self.name = name
        self.args = args
        self.machine = machine_info(torch.device(device))
        self._start = time.perf_counter()

    def finish(self, results: Any, summary: str) -> Path:
        """Write ``args.out`` and print the one-line summary; returns the JSON path."""
        payload = {
            "benchmark": self.name,
            "summary": summary,
            "settings": {key: _jsonable(value) for key, value in vars(self.args).items()},
            "machine": {**self.machine, "load_average_end": [round(v, 2) for v in os.getloadavg()]},
            "wall_seconds": round(time.perf_counter() - self._start, 2),
            "results": results,
        }
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2) + "\n")
        load = self.machine["load_average_start"][0]
        print(
            f"{self.name}: {summary} [{self.machine['device']}, {self.machine['cpus_usable']} CPUs, load {load:.1f} at start; {out}]"
        )
        return out


def print_summaries(folder: Path = RESULTS_DIR) -> None:
    """One line per result file: name, summary, load average at start."""
    for path in sorted(folder.glob("*.json")):
        payload = json.loads(path.read_text())
        load = payload["machine"]["load_average_start"][0]
        print(
            f"{payload['benchmark']}: {payload['summary']} [load {load:.1f} at start, {payload['machine']['started_utc']}]"
        )


if __name__ == "__main__":
    print_summaries()
