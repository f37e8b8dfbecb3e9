"""``anaus-pl study --config configs/study/phantom.yaml``: the phantom ablation study, end to end.

One command runs the public stage commands in subprocesses, each step skipped
when its output exists (rerun the same command to resume):

1. ``anaus-pl phantom`` (the study's phantom commands, into ``<out_dir>/data``);
2. ``anaus-pl fit`` adapt, then ``anaus-pl annotate`` (once);
3. ``anaus-pl fit`` pretrain, once per variant (``<out_dir>/pretrain/<variant>/encoder.pt``);
4. ``anaus-pl evaluate`` once per label regime, every variant plus ``random``;
5. ``docs/RESULTS.md`` written from the evaluate reports: every number in it
   comes from ``report.json``.

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

HEADLINE = {"classification": "accuracy", "segmentation": "dice"}


@dataclass
class StageStep:
    """A stage run: its stage YAML and the command-line overrides (the budget)."""

    config: str
    overrides: list[str] = field(default_factory=list)


@dataclass
class StudyConfig:
    """The study: where it writes, the phantom commands, the stage budgets, the variants and regimes.

    Args:
        out_dir: study folder (data, configs, stage outputs, timings).
        results_md: the generated results document.
        seed: phantom seed.
        phantom: argument lists of ``anaus-pl phantom`` (``--out`` and ``--seed`` are added), run in order.
        adapt, annotate, pretrain: stage YAML and overrides.
        variants: pretrain variant name -> extra overrides (an empty list is the full method).
        evaluate: the evaluate YAML and its overrides: ``set`` (top-level keys) and ``task_set`` (every task).
        only_tasks: evaluate only these tasks (empty: all of the evaluate YAML's).
        label_fractions: label regimes; each is one evaluate run with ``label_fraction`` on every task.
        reference: the variant the others are compared against in the generated statements.
    """

    out_dir: str
    results_md: str
    phantom: list[list[str]]
    adapt: StageStep
    annotate: StageStep
    pretrain: StageStep
    variants: dict[str, list[str]]
    evaluate: dict[str, Any]
    label_fractions: list[float]
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
            raise ValueError(f"{path}: reference {config.reference!r} is not one of the variants {sorted(config.variants)}")
        if not config.label_fractions or not all(0 < f <= 1 for f in config.label_fractions):
            raise ValueError(f"{path}: label_fractions must be values in (0, 1], got {config.label_fractions}")
        return config


def rewrite_paths(value: Any, data_dir: str, out_dir: str) -> Any:
    """Move a stage YAML's default paths into the study: ``data/phantom`` and ``runs``."""
    if isinstance(value, dict):
        return {k: rewrite_paths(v, data_dir, out_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [rewrite_paths(v, data_dir, out_dir) for v in value]
    if isinstance(value, str):
        if value == "data/phantom" or value.startswith("data/phantom/"):
            return data_dir + value[len("data/phantom"):]
        if value == "runs" or value.startswith("runs/"):
            return out_dir + value[len("runs"):]
    return value


class Study:
    """Runs the steps of a :class:`StudyConfig`, each skipped when its output exists."""

    def __init__(self, config: StudyConfig, config_path: str) -> None:
        self.config, self.config_path = config, config_path
        self.out = Path(config.out_dir)
        self.data = self.out / "data"
        self.timings_path = self.out / "timings.json"
        self.timings: dict[str, float] = json.loads(self.timings_path.read_text()) if self.timings_path.is_file() else {}

    # -- running -----------------------------------------------------------------------------------
    def _run(self, step: str, args: list[str]) -> None:
        """``anaus-pl <args>`` in a subprocess; its wall time is added to the study's timings."""
        print(f"[study] {step}: anaus-pl {shlex.join(args)}", flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "anaus_pl.cli", *args], env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if done.returncode != 0:
            raise SystemExit(f"study step {step} failed (exit {done.returncode}); fix it and rerun the same command to resume")
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

    def encoder(self, variant: str) -> Path:
        return self.out / "pretrain" / variant / "encoder.pt"

    def pretrain(self) -> None:
        path = self._stage_config("pretrain", self.config.pretrain.config)
        for variant, extra in self.config.variants.items():
            if self.encoder(variant).is_file():
                continue
            self._run(f"pretrain:{variant}", ["fit", "--config", str(path), *self.config.pretrain.overrides,
                                              f"--trainer.logger.init_args.version={variant}",
                                              f"--model.init_args.export_dir={self.encoder(variant).parent}", *extra])

    def regime_dir(self, fraction: float) -> Path:
        return self.out / "evaluate" / f"labels{round(100 * fraction):03d}"

    def evaluate(self) -> None:
        settings = self.config.evaluate
        inits = [f"encoder:{self.encoder(v)}" for v in self.config.variants] + ["random"]

        for fraction in self.config.label_fractions:
            def edit(loaded: dict, fraction: float = fraction) -> dict:
                tasks = [t for t in loaded["tasks"] if not self.config.only_tasks or t["name"] in self.config.only_tasks]
                loaded["tasks"] = [{**t, **settings.get("task_set", {}), "label_fraction": fraction} for t in tasks]
                return {**loaded, **settings.get("set", {}), "inits": inits, "out_dir": str(self.regime_dir(fraction))}

            path = self._stage_config(f"evaluate_labels{round(100 * fraction):03d}", settings["config"], edit)
            if not (self.regime_dir(fraction) / "report.json").is_file():
                self._run(f"evaluate:labels{round(100 * fraction)}", ["evaluate", "--config", str(path)])

    def run(self) -> Path:
        for step in (self.phantom, self.adapt, self.annotate, self.pretrain, self.evaluate):
            step()
        return write_results(self)


# -- the results document ----------------------------------------------------------------------------
def _variant_of(study: Study, init_label: str, init: str) -> str:
    for variant in study.config.variants:
        if init == f"encoder:{study.encoder(variant)}":
            return variant
    return init_label


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPUs ({cpu}), {gpu}, torch {torch.__version__}, Python {platform.python_version()}, {platform.platform()}"


def compare(rows: dict[str, tuple[float, float]], reference: str) -> list[str]:
    """Plain statements: for each method, whether its difference to ``reference`` exceeds the larger fold std."""
    if reference not in rows:
        return []
    ref_mean, ref_std = rows[reference]
    out = []
    for name, (mean, std) in rows.items():
        if name == reference:
            continue
        diff, spread = ref_mean - mean, max(ref_std, std)
        if abs(diff) > spread:
            verdict = f"{reference} is {'better' if diff > 0 else 'worse'} than {name} by {abs(diff):.3f}, more than the fold std ({spread:.3f})"
        else:
            verdict = f"{reference} and {name} differ by {diff:+.3f}, within the fold std ({spread:.3f}): no difference shown"
        out.append(verdict)
    return out


def write_results(study: Study) -> Path:
    """``docs/RESULTS.md`` from the evaluate reports of every label regime."""
    config = study.config
    target = Path(config.results_md)
    figures_dir = target.parent / "results_figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    reports = {f: json.loads((study.regime_dir(f) / "report.json").read_text()) for f in config.label_fractions}
    first = next(iter(reports.values()))
    total = sum(study.timings.values())
    command = f"anaus-pl study --config {study.config_path}"
    lines = ["# Results: the phantom ablation study", "",
             "Generated by `anaus-pl study`; every number below comes from the evaluate reports "
             f"(`{study.out}/evaluate/*/report.json`). Do not edit by hand: rerun the command.", "",
             f"- Command: `{command}` (or `make study`)",
             f"- Machine: {_machine()}",
             f"- Wall time: {total / 60:.1f} min over the steps run "
             + "(" + ", ".join(f"{k} {v / 60:.1f}" for k, v in study.timings.items()) + " min)"
             + (f"; designed budget {config.budget_minutes:g} min" if config.budget_minutes else ""),
             f"- Written: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
             f"- Protocol: {first['title']}; {first['protocol']['n_folds']} folds, selection `{first['selection']}`; "
             f"label regimes {', '.join(f'{round(100 * f)}%' for f in config.label_fractions)} of each fold's training images",
             "- Variants: " + "; ".join(f"`{name}`: {' '.join(extra) or 'the full method'}" for name, extra in config.variants.items())
             + "; `random`: no pretraining", ""]
    statements: list[str] = []
    for task, entry in first["tasks"].items():
        metric = HEADLINE[entry["kind"]]
        lines += [f"## {task} ({metric}, mean +- std over folds)", "",
                  "| init | " + " | ".join(f"{round(100 * f)}% labels" for f in config.label_fractions) + " |",
                  "|---|" + "---|" * len(config.label_fractions)]
        names: dict[str, dict[float, tuple[float, float]]] = {}
        for fraction, report in reports.items():
            for label, result in report["tasks"][task]["inits"].items():
                name = _variant_of(study, label, result["init"])
                names.setdefault(name, {})[fraction] = (result["mean"][metric], result["std"][metric])
        for name, cells in names.items():
            lines.append(f"| {name} | " + " | ".join(f"{cells[f][0]:.3f} +- {cells[f][1]:.3f}" if f in cells else "n/a"
                                                     for f in config.label_fractions) + " |")
        lines.append("")
        for fraction in config.label_fractions:
            rows = {name: cells[fraction] for name, cells in names.items() if fraction in cells}
            statements += [f"{task}, {round(100 * fraction)}% labels: {s}" for s in compare(rows, config.reference)]
            figure = study.regime_dir(fraction) / "figures" / f"{task}_{metric}.png"
            if figure.is_file():
                copy = figures_dir / f"{task}_{metric}_labels{round(100 * fraction):03d}.png"
                shutil.copyfile(figure, copy)
                lines.append(f"![{task} {metric}, {round(100 * fraction)}% labels]({copy.relative_to(target.parent)})")
        lines.append("")
    lines += _budget_section(study)
    wins = sum("is better" in s for s in statements)
    losses = sum("is worse" in s for s in statements)
    lines += ["## What the numbers support", "",
              f"Of {len(statements)} comparisons of `{config.reference}` with another init, {wins} favour it by more than the "
              f"fold std, {losses} go against it by more than the fold std, and {len(statements) - wins - losses} are within "
              "the fold std (no difference shown at this budget). A difference within one fold std is not evidence either way.",
              "", *[f"- {s}" for s in statements], "",
              "## What they do not support", "",
              "These are phantom tasks, pretrained for minutes on a CPU (steps above), not the paper's 300 epochs of "
              "real Butterfly and CAMUS frames on two GPUs, and each fold tests a few dozen images. The likeliest reason "
              f"when `{config.reference}` does not win is that budget: with a few hundred steps every variant's encoder is "
              "still close to its initialisation, so the evaluate stage's fine-tuning decides most of the result and "
              "differences between pretraining objectives stay inside the fold spread. Nothing here confirms or "
              "contradicts the paper's numbers on real data; rerun with larger pretraining budgets "
              "(`pretrain.overrides`) to see whether the gaps grow.", ""]
    target.write_text("\n".join(lines))
    print(f"[study] results: {target}")
    return target


def _loss_curve(run_dir: Path, tag: str = "train/loss") -> list[float]:
    """The logged training loss of a pretrain run, in step order (empty when nothing was logged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [e.value for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def _budget_section(study: Study) -> list[str]:
    """What each variant's pretraining got: optimizer steps, frames seen (its checkpoint) and its loss curve's ends."""
    from anaus_pl.checkpoints import load_checkpoint

    rows = []
    for variant in study.config.variants:
        run_dir = study.encoder(variant).parent
        checkpoint = run_dir / "checkpoints" / "last.ckpt"
        if not checkpoint.is_file():
            rows.append(f"| {variant} | n/a | n/a | n/a |")
            continue
        state = load_checkpoint(checkpoint, "pretrain")
        batch = state.get("datamodule_hyper_parameters", {}).get("batch_size")
        steps = int(state["global_step"])
        curve = _loss_curve(run_dir)
        ends = f"{sum(curve[:3]) / len(curve[:3]):.3f} -> {sum(curve[-3:]) / len(curve[-3:]):.3f}" if curve else "n/a"
        rows.append(f"| {variant} | {steps} | {steps * batch if batch else 'n/a'} | {ends} |")
    minutes = {k.split(":", 1)[1]: v / 60 for k, v in study.timings.items() if k.startswith("pretrain:")}
    return ["## Pretraining budget", "",
            "| variant | optimizer steps | frames seen | training loss, first -> last 3 logged steps |",
            "|---|---|---|---|", *rows, "",
            "Wall time per variant (min): " + ", ".join(f"{k} {v:.1f}" for k, v in minutes.items()), ""]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="anaus-pl study", description="the phantom ablation study (see docs/RESULTS.md)")
    parser.add_argument("--config", required=True, help="study YAML, e.g. configs/study/phantom.yaml")
    args = parser.parse_args(list(argv))
    Study(StudyConfig.load(args.config), args.config).run()
    return 0
