"""``anaus-pl study --config configs/study/phantom.yaml``: the phantom study as a learning curve, end to end.

Question: does pretraining teach, and does the anatomy objective teach more
than its ablations? One command runs the public stage commands in
subprocesses, each step skipped when its output exists (rerun the same
command to resume):

1. ``anaus-pl phantom`` (the study's phantom commands, into ``<out_dir>/data``);
2. ``anaus-pl fit`` adapt, then ``anaus-pl annotate`` (once);
3. ``anaus-pl fit`` pretrain, once per variant and budget > 0 steps
   (``<out_dir>/pretrain/<variant>-s<steps>/encoder.pt``); budget 0 is the random init;
4. ``anaus-pl evaluate`` once, frozen protocols only, every encoder plus ``random``
   (the reference of the paired intervals);
5. ``docs/RESULTS.md`` and its figure, every number and sentence generated from ``report.json``.

Each stage's config is its stage YAML with the paths rewritten into the study
folder (``data/phantom`` -> ``<out_dir>/data``, ``runs`` -> ``<out_dir>``),
written to ``<out_dir>/configs/``; command-line overrides carry the budgets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from anaus_pl.evaluation.kinds import get_kind
from anaus_pl.evaluation.statistics import PairedComparison, paired_comparison
from anaus_pl.models.inits import Init, init_label

RANDOM = str(Init("random"))


@dataclass
class StageStep:
    """A stage run: its stage YAML and the command-line overrides (the budget)."""

    config: str
    overrides: list[str] = field(default_factory=list)


@dataclass
class StudyConfig:
    """The study: where it writes, the phantom commands, the stage budgets, the variants and the learning curve.

    Args:
        out_dir: study folder (data, configs, stage outputs, timings).
        results_md: the generated results document (its figure goes to ``results_figures/`` beside it).
        phantom: argument lists of ``anaus-pl phantom`` (``--out`` and ``--seed`` are added), run in order.
        adapt, annotate, pretrain: stage YAML and overrides.
        variants: pretrain variant name -> extra overrides (an empty list is the full method).
        budgets: pretraining optimizer steps of the learning curve; 0 is the random init (shared by all variants).
        evaluate: the evaluate YAML and its overrides: ``set`` (top-level keys) and ``task_set`` (every task);
            the study keeps each task's frozen protocols only.
        seed: phantom seed.
        only_tasks: evaluate only these tasks (empty: all of the evaluate YAML's).
        reference: the variant the others are compared against at each budget (paired, per unit).
        budget_minutes: the designed wall time, quoted in the results.
    """

    out_dir: str
    results_md: str
    phantom: list[list[str]]
    adapt: StageStep
    annotate: StageStep
    pretrain: StageStep
    variants: dict[str, list[str]]
    budgets: list[int]
    evaluate: dict[str, Any]
    seed: int = 0
    only_tasks: list[str] = field(default_factory=list)
    reference: str = "anaus"
    budget_minutes: float | None = None

    @classmethod
    def load(cls, path: str | Path) -> StudyConfig:
        raw = yaml.safe_load(Path(path).read_text())
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{path}: unknown study keys {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        for stage in ("adapt", "annotate", "pretrain"):
            raw[stage] = StageStep(**raw[stage])
        config = cls(**raw)
        if config.reference not in config.variants:
            raise ValueError(
                f"{path}: reference {config.reference!r} is not one of the variants {sorted(config.variants)}"
            )
        if 0 not in config.budgets or any(b < 0 for b in config.budgets) or len(config.budgets) < 2:
            raise ValueError(
                f"{path}: budgets must hold 0 (the random init) and at least one positive step count, "
                f"got {config.budgets}"
            )
        config.budgets = sorted(set(config.budgets))
        return config


def rewrite_paths(value: Any, data_dir: str, out_dir: str) -> Any:
    """Move a stage YAML's default paths into the study: ``data/phantom`` and ``runs``."""
    if isinstance(value, dict):
        return {k: rewrite_paths(v, data_dir, out_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [rewrite_paths(v, data_dir, out_dir) for v in value]
    if isinstance(value, str):
        if value == "data/phantom" or value.startswith("data/phantom/"):
            return data_dir + value[len("data/phantom") :]
        if value == "runs" or value.startswith("runs/"):
            return out_dir + value[len("runs") :]
    return value


class Study:
    """Runs the steps of a :class:`StudyConfig`, each skipped when its output exists."""

    def __init__(self, config: StudyConfig, config_path: str) -> None:
        self.config, self.config_path = config, config_path
        self.out = Path(config.out_dir)
        self.data = self.out / "data"
        self.timings_path = self.out / "timings.json"
        self.timings: dict[str, float] = (
            json.loads(self.timings_path.read_text()) if self.timings_path.is_file() else {}
        )

    # -- running -----------------------------------------------------------------------------------
    def _run(self, step: str, args: list[str]) -> None:
        """``anaus-pl <args>`` in a subprocess; its wall time is added to the study's timings."""
        print(f"[study] {step}: anaus-pl {shlex.join(args)}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "anaus_pl.cli", *args], env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        if done.returncode != 0:
            raise SystemExit(
                f"study step {step} failed (exit {done.returncode}); fix it and rerun the same command to resume"
            )
        self.timings[step] = round(self.timings.get(step, 0.0) + time.perf_counter() - start, 1)
        self.out.mkdir(parents=True, exist_ok=True)
        self.timings_path.write_text(json.dumps(self.timings, indent=1) + "\n")

    def _stage_config(self, name: str, stage_yaml: str, edit: Any = None) -> Path:
        loaded = rewrite_paths(yaml.safe_load(Path(stage_yaml).read_text()), str(self.data), str(self.out))
        if edit is not None:
            loaded = edit(loaded)
        path = self.out / "configs" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(loaded, sort_keys=False))
        return path

    def phantom(self) -> None:
        stamp = self.data / ".study-complete"
        if stamp.is_file():
            return
        for k, args in enumerate(self.config.phantom):
            self._run(f"phantom{k}", ["phantom", "--out", str(self.data), "--seed", str(self.config.seed), *args])
        stamp.write_text(json.dumps(self.config.phantom) + "\n")

    def adapt(self) -> None:
        if (self.out / "adapt" / "default" / "checkpoints" / "last.ckpt").is_file():
            return
        path = self._stage_config("adapt", self.config.adapt.config)
        self._run("adapt", ["fit", "--config", str(path), *self.config.adapt.overrides])

    def annotate(self) -> None:
        if (self.out / "annotate" / "default" / "anatomy.h5").is_file():
            return
        path = self._stage_config("annotate", self.config.annotate.config)
        self._run("annotate", ["annotate", "--config", str(path), *self.config.annotate.overrides])

    def run_name(self, variant: str, steps: int) -> str:
        return f"{variant}-s{steps}"

    def encoder(self, variant: str, steps: int) -> Path:
        return self.out / "pretrain" / self.run_name(variant, steps) / "encoder.pt"

    def init_of(self, variant: str, steps: int) -> str:
        """The evaluate init string of a (variant, budget) point; budget 0 is the random init."""
        return RANDOM if steps == 0 else str(Init.encoder(self.encoder(variant, steps)))

    def stopped_short(self, variant: str, steps: int) -> tuple[int, int] | None:
        """``(steps_done, steps_planned)`` where the run's export records a fit stopped before its plan, else None."""
        meta = self.encoder(variant, steps).with_name("encoder.json")
        if not meta.is_file():
            return None
        record = json.loads(meta.read_text())
        done, planned = record.get("steps_done"), record.get("steps_planned")
        return (done, planned) if done is not None and planned is not None and done < planned else None

    def pretrained(self, variant: str, steps: int) -> bool:
        """Whether the run's export exists and did all its planned steps (a stopped run is exported too)."""
        encoder = self.encoder(variant, steps)
        return (
            encoder.is_file()
            and encoder.with_name("encoder.json").is_file()
            and self.stopped_short(variant, steps) is None
        )

    def pretrain(self) -> None:
        path = self._stage_config("pretrain", self.config.pretrain.config)
        for steps in (b for b in self.config.budgets if b > 0):
            for variant, extra in self.config.variants.items():
                if self.pretrained(variant, steps):
                    continue
                if (short := self.stopped_short(variant, steps)) is not None:
                    print(
                        f"[study] {self.encoder(variant, steps).parent}: stopped at {short[0]} of {short[1]} steps; "
                        "pretraining it again",
                        flush=True,
                    )
                name = self.run_name(variant, steps)
                shutil.rmtree(self.encoder(variant, steps).parent, ignore_errors=True)  # no stale logs or export
                self._run(
                    f"pretrain:{name}",
                    [
                        "fit",
                        "--config",
                        str(path),
                        *self.config.pretrain.overrides,
                        f"--trainer.max_steps={steps}",
                        "--trainer.max_epochs=-1",
                        f"--trainer.logger.init_args.version={name}",
                        f"--model.init_args.export_dir={self.encoder(variant, steps).parent}",
                        *extra,
                    ],
                )

    @property
    def evaluate_dir(self) -> Path:
        return self.out / "evaluate"

    def inits(self) -> list[str]:
        return [RANDOM] + [self.init_of(v, b) for b in self.config.budgets if b > 0 for v in self.config.variants]

    def evaluate(self) -> None:
        settings = self.config.evaluate

        def edit(loaded: dict) -> dict:
            tasks = [t for t in loaded["tasks"] if not self.config.only_tasks or t["name"] in self.config.only_tasks]
            frozen = []
            for task in tasks:
                protocols = [p for p in task.get("protocols") or get_kind(task["kind"]).protocols if p != "finetune"]
                frozen.append({**task, **settings.get("task_set", {}), "protocols": protocols})
            return {
                **loaded,
                **settings.get("set", {}),
                "tasks": frozen,
                "inits": self.inits(),
                "reference": RANDOM,
                "out_dir": str(self.evaluate_dir),
            }

        path = self._stage_config("evaluate", settings["config"], edit)
        if not (self.evaluate_dir / "report.json").is_file():
            self._run("evaluate", ["evaluate", "--config", str(path)])

    def run(self) -> Path:
        for step in (self.phantom, self.adapt, self.annotate, self.pretrain, self.evaluate):
            step()
        return write_results(self)


# -- the results document ----------------------------------------------------------------------------
def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPUs ({cpu}), {gpu}, torch {torch.__version__}, Python {platform.python_version()}, {platform.platform()}"


def _units(entry: dict, metric: str) -> dict[tuple[int, int], float]:
    return {(u["repeat"], u["fold"]): u[metric] for u in entry["folds"]}


def paired(candidate: dict, reference: dict, metric: str, higher_is_better: bool) -> PairedComparison:
    """Paired comparison of two report entries' per-unit values (the units both hold)."""
    a, b = _units(candidate, metric), _units(reference, metric)
    shared = sorted(set(a) & set(b))
    return paired_comparison([a[u] for u in shared], [b[u] for u in shared], higher_is_better=higher_is_better)


@dataclass
class Curve:
    """One task and protocol of the learning curve: entries by (variant, budget), the headline and its direction."""

    task: str
    protocol: str
    metric: str
    higher_is_better: bool
    entries: dict[tuple[str, int], dict]


def curves(study: Study, report: dict) -> list[Curve]:
    """The learning curves in a report: every variant at every budget (budget 0: the random init)."""
    out = []
    for task, entry in report["tasks"].items():
        kind = get_kind(entry["kind"])
        for protocol, result in entry["protocols"].items():
            points = {
                (v, b): result["inits"][init_label(study.init_of(v, b))]
                for v in study.config.variants
                for b in study.config.budgets
                if init_label(study.init_of(v, b)) in result["inits"]
            }
            out.append(Curve(task, protocol, kind.headline, kind.higher_is_better(), points))
    return out


def curve_figure(study: Study, found: list[Curve], path: Path) -> None:
    """Headline metric against pretraining steps, a line per variant; bars: 95 % CI of the paired difference to random."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(found))
    rows = -(-len(found) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), squeeze=False)
    for axis, curve in zip(axes.flat, found):
        random_entry = curve.entries.get((study.config.reference, 0))
        for i, variant in enumerate(study.config.variants):
            budgets = [b for b in study.config.budgets if (variant, b) in curve.entries]
            means = [100 * curve.entries[(variant, b)]["mean"][curve.metric] for b in budgets]
            errors = []
            for b in budgets:
                if b == 0 or random_entry is None:
                    errors.append(0.0)
                    continue
                c = paired(curve.entries[(variant, b)], random_entry, curve.metric, curve.higher_is_better)
                errors.append(100 * (c.high - c.low) / 2 if c.n > 1 else 0.0)
            axis.errorbar(
                budgets,
                means,
                yerr=errors,
                marker="o",
                capsize=3,
                color=f"C{i}",
                label=variant,
                alpha=0.85,
                linewidth=1.2,
            )
        axis.set_title(f"{curve.task} · {curve.protocol}", fontsize=9)
        axis.set_xlabel("pretraining steps (0: random init)")
        axis.set_ylabel(f"{curve.metric} (%)")
    for axis in list(axes.flat)[len(found) :]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _points(value: float) -> str:
    return f"{100 * value:.1f} pt"


def _range(values: list[float]) -> str:
    return f"{_points(min(values))} to {_points(max(values))}" if values else "n/a"


def write_results(study: Study) -> Path:
    """``docs/RESULTS.md`` from the evaluate report: the learning curve as a figure, tables and generated statements."""
    config = study.config
    target = Path(config.results_md)
    report = json.loads((study.evaluate_dir / "report.json").read_text())
    found = curves(study, report)
    figure = target.parent / "results_figures" / "learning_curve.png"
    curve_figure(study, found, figure)
    total = sum(study.timings.values())
    protocol = report["protocol"]
    positive = [b for b in config.budgets if b > 0]
    lines = [
        "# Results: the phantom study as a learning curve",
        "",
        "Generated by `anaus-pl study`; every number and sentence below comes from the evaluate report "
        f"(`{study.evaluate_dir}/report.json`). Do not edit by hand: rerun the command.",
        "",
        f"- Command: `anaus-pl study --config {study.config_path}` (or `make study`)",
        f"- Machine: {_machine()}",
        f"- Wall time: {total / 60:.1f} min over the steps run "
        + "("
        + ", ".join(f"{k} {v / 60:.1f}" for k, v in study.timings.items())
        + " min)"
        + (f"; designed budget {config.budget_minutes:g} min" if config.budget_minutes else ""),
        f"- Written: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"- Protocol: frozen encoders only; {protocol['n_folds']} folds x {report['repeats']} repeats = paired units; "
        f"{report['std']}; intervals are 95 % t-intervals of the per-unit difference; 'detectable' is the smallest "
        "difference the design detects at 95 % confidence and 80 % power",
        "- Variants: "
        + "; ".join(f"`{name}`: {' '.join(extra) or 'the full method'}" for name, extra in config.variants.items())
        + f"; budgets {', '.join(map(str, config.budgets))} optimizer steps (0: the random init, shared)",
        "",
        f"![learning curve]({figure.relative_to(target.parent)})",
        "",
    ]
    versus_random: list[PairedComparison] = []
    versus_reference: list[PairedComparison] = []
    statements: list[str] = []
    for curve in found:
        random_entry = curve.entries.get((config.reference, 0))
        lines += [
            f"## {curve.task} · {curve.protocol} ({curve.metric}, %, mean; Δ: paired difference to random, 95 % CI)",
            "",
            "| variant | " + " | ".join(f"{b} steps" for b in config.budgets) + " |",
            "|---|" + "---|" * len(config.budgets),
        ]
        for variant in config.variants:
            cells = []
            for b in config.budgets:
                entry = curve.entries.get((variant, b))
                if entry is None:
                    cells.append("n/a")
                    continue
                text = f"{100 * entry['mean'][curve.metric]:.1f}"
                if b > 0 and random_entry is not None:
                    c = paired(entry, random_entry, curve.metric, curve.higher_is_better)
                    versus_random.append(c)
                    text += f" (Δ {100 * c.mean:+.1f} [{100 * c.low:+.1f}, {100 * c.high:+.1f}])"
                    statements.append(
                        f"{curve.task} · {curve.protocol}, {b} steps: " + c.sentence(variant, RANDOM, 100, " pt")
                    )
                cells.append(text)
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        lines.append("")
        for b in positive:
            ours = curve.entries.get((config.reference, b))
            for variant in config.variants:
                other = curve.entries.get((variant, b))
                if variant == config.reference or ours is None or other is None:
                    continue
                c = paired(ours, other, curve.metric, curve.higher_is_better)
                versus_reference.append(c)
                statements.append(
                    f"{curve.task} · {curve.protocol}, {b} steps: " + c.sentence(config.reference, variant, 100, " pt")
                )
    lines += _budget_section(study)
    lines += ["## What the numbers support", ""] + _verdicts(
        versus_random, "a pretrained encoder against the random init"
    )
    lines += _verdicts(versus_reference, f"`{config.reference}` against each ablation at the same budget")
    lines += ["", *[f"- {s}" for s in statements], ""]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines))
    print(f"[study] results: {target}")
    return target


def _verdicts(comparisons: list[PairedComparison], what: str) -> list[str]:
    """A generated summary of a family of comparisons (counts, and the resolution when nothing shows)."""
    if not comparisons:
        return [f"No comparison of {what} was possible (missing results).", ""]
    better = sum(c.verdict == "better" for c in comparisons)
    worse = sum(c.verdict == "worse" for c in comparisons)
    detectable = [c.detectable for c in comparisons if c.n > 1]
    line = (
        f"Of {len(comparisons)} comparisons of {what}, {better} show a gain, {worse} a loss and "
        f"{len(comparisons) - better - worse} no difference (95 % CI holds 0). The smallest differences the design "
        f"detects (95 % confidence, 80 % power) range from {_range(detectable)} (median "
        f"{_points(sorted(detectable)[len(detectable) // 2])})."
        if detectable
        else f"Of {len(comparisons)} comparisons of {what}, none has two paired units: no interval."
    )
    if better == 0 and detectable:
        line += f" No gain shows at these budgets; a true gain of {_points(max(detectable))} or more would have shown."
    return [line, ""]


def _loss_curve(run_dir: Path, tag: str = "train/loss") -> list[float]:
    """The logged training loss of a pretrain run, in step order (empty when nothing was logged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [e.value for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def _budget_section(study: Study) -> list[str]:
    """What each pretraining run got: optimizer steps, frames seen (its checkpoint) and its loss curve's ends."""
    from anaus_pl.tasks.stage_checkpoints import load_stage_checkpoint

    rows = []
    for steps in (b for b in study.config.budgets if b > 0):
        for variant in study.config.variants:
            name = study.run_name(variant, steps)
            run_dir = study.encoder(variant, steps).parent
            checkpoint = run_dir / "checkpoints" / "last.ckpt"
            if not checkpoint.is_file():
                rows.append(f"| {name} | n/a | n/a | n/a | n/a |")
                continue
            state = load_stage_checkpoint(checkpoint, "pretrain")
            batch = state.get("datamodule_hyper_parameters", {}).get("batch_size")
            done = int(state["global_step"])
            curve = _loss_curve(run_dir)
            ends = (
                f"{sum(curve[:3]) / len(curve[:3]):.3f} -> {sum(curve[-3:]) / len(curve[-3:]):.3f}" if curve else "n/a"
            )
            minutes = study.timings.get(f"pretrain:{name}")
            rows.append(
                f"| {name} | {done} | {done * batch if batch else 'n/a'} | {ends} | "
                f"{f'{minutes / 60:.1f}' if minutes else 'n/a'} |"
            )
    return [
        "## Pretraining budget",
        "",
        "| run | optimizer steps | frames seen | training loss, first -> last 3 logged steps | wall time (min) |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="anaus-pl study", description="the phantom ablation study (see docs/RESULTS.md)"
    )
    parser.add_argument("--config", required=True, help="study YAML, e.g. configs/study/phantom.yaml")
    args = parser.parse_args(list(argv))
    Study(StudyConfig.load(args.config), args.config).run()
    return 0
