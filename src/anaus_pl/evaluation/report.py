"""The evaluation report: ``report.json``, ``report.md``, PNG figures and TensorBoard.

Every number comes from the per-fold result files; mean and std are over
folds (population std, ``ddof=0``, as numpy). Ratios are shown in percent,
HD95 in pixels at the task's letterboxed size.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from anaus_pl.atomic import write_json, write_text  # noqa: E402
from anaus_pl.evaluation.config import EvaluateConfig, TaskConfig  # noqa: E402
from anaus_pl.evaluation.metrics import CLASSIFICATION_METRICS, SEGMENTATION_METRICS  # noqa: E402
from anaus_pl.models.downstream import init_label  # noqa: E402

LOWER_IS_BETTER = {"hd95"}
PAPER_MODE_NOTE = "paper-compatible protocol: best epoch selected on the test fold (optimistic, as USCL/HiCo/ANAUS)"


def report_title(config: EvaluateConfig) -> str:
    """The report's title; the paper-compatible mode says so."""
    title = "anaus-pl downstream evaluation"
    return f"{title} ({PAPER_MODE_NOTE})" if config.selection == "test_fold_best_epoch" else title


def _metric_names(task: TaskConfig) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task.kind == "classification" else SEGMENTATION_METRICS


def _summarise(task: TaskConfig, records: list[dict]) -> dict:
    folds = [{"fold": r["fold"], "best_epoch": r["best_epoch"], "n_test": r["n_test"], **r["metrics"]} for r in records]
    summary = {"folds": folds, "mean": {}, "std": {}}
    for name in _metric_names(task):
        values = np.array([r["metrics"][name] for r in records], dtype=float)
        summary["mean"][name], summary["std"][name] = float(np.mean(values)), float(np.std(values))
    if task.kind == "classification":
        classes = records[0]["class_names"]
        for name in ("precision", "recall"):
            summary["mean"][name] = {c: float(np.mean([r["metrics"][name][c] for r in records])) for c in classes}
        pooled = np.sum([r["metrics"]["confusion"] for r in records], axis=0)
        summary["pooled_confusion"] = pooled.tolist()
        summary["pooled_accuracy"] = float(np.trace(pooled) / max(1, pooled.sum()))
        summary["class_names"] = classes
    return summary


def collect(out_dir: Path, config: EvaluateConfig, folds_by_task: dict[str, dict]) -> dict:
    """report.json's content: tasks -> inits -> folds -> metrics, with mean and std."""
    report = {"title": report_title(config), "selection": config.selection, "protocol": asdict(config), "tasks": {}}
    for task in config.tasks:
        entry = {"kind": task.kind, "head": task.head, "folds": folds_by_task.get(task.name, {}).get("origin"),
                 "fold_seed": folds_by_task.get(task.name, {}).get("seed"), "inits": {}}
        for init in config.inits:
            files = sorted((out_dir / "results" / task.name / init_label(init)).glob("fold*.json"))
            records = [json.loads(f.read_text()) for f in files]
            if records:
                entry["inits"][init_label(init)] = {"init": init, **_summarise(task, records)}
        report["tasks"][task.name] = entry
    return report


def schedule_note(init: str) -> str:
    """How much of its schedule an ``encoder:`` init was pretrained for, from its ``encoder.json`` (else ``""``)."""
    kind, _, path = init.partition(":")
    meta = Path(path) / "encoder.json" if Path(path).is_dir() else Path(path).with_name("encoder.json")
    if kind != "encoder" or not meta.is_file():
        return ""
    raw = json.loads(meta.read_text())
    done, planned = raw.get("steps_done"), raw.get("steps_planned")
    if done is None or planned is None:
        return ""
    return f" (**pretraining stopped at step {done} of {planned}**)" if done < planned else f" ({done}/{planned} steps)"


def _cell(name: str, mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}" if name in LOWER_IS_BETTER else f"{100 * mean:.1f} ± {100 * std:.1f}"


def markdown(report: dict, config: EvaluateConfig) -> str:
    """report.md: protocol, then one table per task (inits as rows, mean ± std, best in bold)."""
    lines = [f"# {report['title']}", "", "## Protocol", "",
             f"- {config.n_folds}-fold cross-validation; model selection: "
             + ("**on the test fold (paper-compatible, optimistic)**" if config.selection == "test_fold_best_epoch"
                else f"inner validation split ({config.val_fraction:.0%} of each training part, group-aware)"),
             f"- backbone {config.library}.{config.arch}; fold seed {config.seed}, fold k trains with seed {config.seed}+k",
             "- ratios in %, HD95 in pixels at the task's image size; mean ± std over folds; best in bold", ""]
    lines += ["| task | data | head | mode | size | epochs | optimizer | lr | folds |", "|---|---|---|---|---|---|---|---|---|"]
    for task in config.tasks:
        origin = report["tasks"][task.name]["folds"] or "-"
        mode = task.mode + (f" (last {task.trainable_stages} stages)" if task.mode == "finetune" else "")
        lines.append(f"| {task.name} | {task.layout} `{task.root}` | {task.head} | {mode} | {task.image_size} | {task.epochs} "
                     f"| {task.optimizer} | {task.lr:g} | {origin} |")
    for task in config.tasks:
        inits = report["tasks"][task.name]["inits"]
        names = _metric_names(task)
        lines += ["", f"## {task.name}", ""]
        if not inits:
            lines.append("No results yet.")
            continue
        best = {}
        for name in names:
            means = {label: entry["mean"][name] for label, entry in inits.items()}
            best[name] = (min if name in LOWER_IS_BETTER else max)(means.values())
        header = ["init", *names, "folds"]
        if task.kind == "classification":
            header.insert(-1, "pooled acc.")
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for label, entry in inits.items():
            cells = []
            for name in names:
                text = _cell(name, entry["mean"][name], entry["std"][name])
                cells.append(f"**{text}**" if len(inits) > 1 and np.isclose(entry["mean"][name], best[name]) else text)
            if task.kind == "classification":
                cells.append(f"{100 * entry['pooled_accuracy']:.1f}")
            lines.append(f"| {label}{schedule_note(entry['init'])} | " + " | ".join(cells) + f" | {len(entry['folds'])} |")
    lines += ["", "Figures: `figures/` (bars per metric with fold dots, confusion matrices, segmentation overlays).", ""]
    return "\n".join(lines)


def bar_figure(task: str, name: str, inits: dict) -> plt.Figure:
    """Mean per init as bars, each fold as a dot."""
    figure, axis = plt.subplots(figsize=(1.6 + 1.2 * len(inits), 3.2))
    scale = 1 if name in LOWER_IS_BETTER else 100
    for x, (label, entry) in enumerate(inits.items()):
        values = np.array([fold[name] for fold in entry["folds"]]) * scale
        axis.bar(x, values.mean(), yerr=values.std(), color=f"C{x}", alpha=0.6, capsize=4)
        jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        axis.scatter(x + jitter, values, color="k", s=12, zorder=3)
    axis.set_xticks(range(len(inits)), list(inits), rotation=15)
    axis.set_ylabel(f"{name} ({'px' if name in LOWER_IS_BETTER else '%'})")
    axis.set_title(f"{task}: {name}")
    figure.tight_layout()
    return figure


def confusion_figure(task: str, inits: dict) -> plt.Figure:
    """Confusion matrices summed over folds, one panel per init."""
    figure, axes = plt.subplots(1, len(inits), figsize=(3.4 * len(inits), 3.2), squeeze=False)
    for axis, (label, entry) in zip(axes[0], inits.items()):
        matrix = np.array(entry["pooled_confusion"])
        axis.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            axis.text(j, i, str(value), ha="center", va="center", color="white" if value > matrix.max() / 2 else "black")
        classes = entry["class_names"]
        axis.set_xticks(range(len(classes)), classes, rotation=30)
        axis.set_yticks(range(len(classes)), classes)
        axis.set_xlabel("predicted")
        axis.set_ylabel("truth")
        axis.set_title(f"{label} (acc. {100 * entry['pooled_accuracy']:.1f}%)")
    figure.suptitle(task)
    figure.tight_layout()
    return figure


def overlay_figure(task: str, out_dir: Path, labels: list[str], count: int) -> plt.Figure | None:
    """Per init, the best and worst test images by Dice: truth in green, prediction in red."""
    rows = []
    for label in labels:
        files = sorted((out_dir / "results" / task / label).glob("fold*_cases.npz"))
        if not files:
            continue
        cases = [np.load(f) for f in files]
        dice = np.concatenate([c["dice"] for c in cases])
        stack = {key: np.concatenate([c[key] for c in cases]) for key in ("image", "truth", "prediction", "source")}
        order = np.argsort(dice, kind="stable")
        rows.append((label, "best", order[::-1][:count], stack, dice))
        rows.append((label, "worst", order[:count], stack, dice))
    if not rows:
        return None
    figure, axes = plt.subplots(len(rows), count, figsize=(2.2 * count, 2.3 * len(rows)), squeeze=False)
    for r, (label, which, chosen, stack, dice) in enumerate(rows):
        for c in range(count):
            axis = axes[r][c]
            axis.axis("off")
            if c >= len(chosen):
                continue
            i = chosen[c]
            rgb = np.repeat(stack["image"][i][..., None], 3, -1).astype(float) / 255
            rgb[stack["truth"][i] > 0] = 0.5 * rgb[stack["truth"][i] > 0] + [0, 0.5, 0]
            rgb[stack["prediction"][i] > 0] = 0.5 * rgb[stack["prediction"][i] > 0] + [0.5, 0, 0]
            axis.imshow(rgb.clip(0, 1))
            axis.set_title(f"{label} {which}\nDice {100 * dice[i]:.1f}", fontsize=7)
    figure.suptitle(f"{task}: truth green, prediction red (overlap yellow-brown)")
    figure.tight_layout()
    return figure


def build_report(out_dir: str | Path, config: EvaluateConfig, folds_by_task: dict[str, dict]) -> Path:
    """Write report.json, report.md, figures/*.png and the TensorBoard report; returns report.json's path."""
    from torch.utils.tensorboard import SummaryWriter

    out_dir = Path(out_dir)
    report = collect(out_dir, config, folds_by_task)
    write_json(out_dir / "report.json", report, indent=1)
    text = markdown(report, config)
    write_text(out_dir / "report.md", text)
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(exist_ok=True)
    writer = SummaryWriter(str(out_dir / "tensorboard" / "report"))
    writer.add_text("report", text)
    for task in config.tasks:
        inits = report["tasks"][task.name]["inits"]
        if not inits:
            continue
        figures = {f"{task.name}_{name}": bar_figure(task.name, name, inits) for name in _metric_names(task)}
        if task.kind == "classification":
            figures[f"{task.name}_confusion"] = confusion_figure(task.name, inits)
        else:
            overlay = overlay_figure(task.name, out_dir, list(inits), config.overlay_cases)
            if overlay is not None:
                figures[f"{task.name}_overlays"] = overlay
        for name, figure in figures.items():
            figure.savefig(figures_dir / f"{name}.png", dpi=110)
            writer.add_figure(f"report/{name}", figure)  # closes the figure
    writer.close()
    return out_dir / "report.json"
