"""The evaluation report: ``report.json``, ``report.md``, PNG figures and TensorBoard.

Every number comes from the per-unit result files. Per init and protocol: each
unit's values (folds x repeats), their mean and sample std (``ddof=1``), and
for every init but the reference the paired per-unit difference to the
reference with its 95 % t-interval and the smallest difference the design
detects (95 % confidence, 80 % power; :mod:`anaus_pl.evaluation.statistics`).
Ratios are shown in percent, distances (HD95) in pixels at the task's letterboxed size.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from anaus_pl.atomic import write_json, write_text
from anaus_pl.evaluation.config import EvaluateConfig, TaskConfig
from anaus_pl.evaluation.kinds import DownstreamKind
from anaus_pl.evaluation.statistics import paired_comparison, sample_std
from anaus_pl.models.inits import Init, init_label

PAPER_MODE_NOTE = "paper-compatible protocol: best epoch selected on the test fold (optimistic, as USCL/HiCo/ANAUS)"
STD_NOTE = "std is the sample std over units (ddof=1)"


def report_title(config: EvaluateConfig) -> str:
    """The report's title; the paper-compatible mode says so."""
    title = "anaus-pl downstream evaluation"
    return f"{title} ({PAPER_MODE_NOTE})" if config.selection == "test_fold_best_epoch" else title


def _summarise(kind: DownstreamKind, records: list[dict]) -> dict:
    records = sorted(records, key=lambda r: (r["repeat"], r["fold"]))
    units = [
        {
            "repeat": r["repeat"],
            "fold": r["fold"],
            "best_epoch": r.get("best_epoch"),
            "n_test": r["n_test"],
            **{name: r["metrics"][name] for name in kind.metrics},
        }
        for r in records
    ]
    summary = {"folds": units, "mean": {}, "std": {}}
    for name in kind.metrics:
        values = [r["metrics"][name] for r in records]
        summary["mean"][name], summary["std"][name] = float(np.mean(values)), sample_std(values)
    return {**summary, **kind.summarise(records)}


def _compare(kind: DownstreamKind, entry: dict, reference: dict) -> dict:
    """Paired comparisons of every metric over the units both hold."""
    shared = sorted(
        {(u["repeat"], u["fold"]) for u in entry["folds"]} & {(u["repeat"], u["fold"]) for u in reference["folds"]}
    )
    by_unit = [{(u["repeat"], u["fold"]): u for u in e["folds"]} for e in (entry, reference)]
    out = {}
    for name in kind.metrics:
        result = paired_comparison(
            [by_unit[0][u][name] for u in shared],
            [by_unit[1][u][name] for u in shared],
            higher_is_better=kind.higher_is_better(name),
        )
        out[name] = {**asdict(result), "verdict": result.verdict}
    return out


def collect(out_dir: Path, config: EvaluateConfig) -> dict:
    """report.json's content: tasks -> protocols -> inits -> units, mean, std and paired comparisons."""
    reference = config.reference_init
    report = {
        "title": report_title(config),
        "selection": config.selection,
        "repeats": config.repeats,
        "reference": init_label(reference) if reference else None,
        "std": STD_NOTE,
        "protocol": asdict(config),
        "tasks": {},
    }
    for task in config.tasks:
        kind = task.task_kind
        folds_file = out_dir / "folds" / f"{task.name}_r0.json"
        folds = json.loads(folds_file.read_text()) if folds_file.is_file() else {}
        entry = {
            "kind": task.kind,
            "head": task.head,
            "headline": kind.headline,
            "folds": folds.get("origin"),
            "fold_seed": folds.get("seed"),
            "protocols": {},
        }
        for protocol in task.protocols:
            inits = {}
            for init in config.inits:
                files = sorted((out_dir / "results" / task.name / protocol / init_label(init)).glob("r*_fold*.json"))
                records = [json.loads(f.read_text()) for f in files]
                if records:
                    inits[init_label(init)] = {"init": init, **_summarise(kind, records)}
            ref_label = init_label(reference) if reference else None
            comparisons = {
                label: _compare(kind, result, inits[ref_label])
                for label, result in inits.items()
                if ref_label in inits and label != ref_label
            }
            entry["protocols"][protocol] = {"inits": inits, "comparisons": comparisons}
        report["tasks"][task.name] = entry
    return report


def schedule_note(init: str) -> str:
    """How much of its schedule an ``encoder:`` init was pretrained for, from its ``encoder.json`` (else ``""``)."""
    parsed = Init.parse(init)
    if parsed.kind != "encoder":
        return ""
    path = Path(parsed.path)
    meta = path / "encoder.json" if path.is_dir() else path.with_name("encoder.json")
    if not meta.is_file():
        return ""
    raw = json.loads(meta.read_text())
    done, planned = raw.get("steps_done"), raw.get("steps_planned")
    if done is None or planned is None:
        return ""
    return f" (**pretraining stopped at step {done} of {planned}**)" if done < planned else f" ({done}/{planned} steps)"


def _scale(kind: DownstreamKind, name: str) -> tuple[float, str]:
    return (100.0, " pt") if kind.higher_is_better(name) else (1.0, " px")


def _cell(kind: DownstreamKind, name: str, mean: float, std: float) -> str:
    scale, _ = _scale(kind, name)
    digits = 2 if scale == 1 else 1
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def _protocol_line(task: TaskConfig, protocol: str) -> str:
    if protocol == "finetune":
        mode = task.mode + (f" (last {task.trainable_stages} stages)" if task.mode == "finetune" else "")
        return f"finetune: {task.head} head, {mode}, {task.epochs} epochs, {task.optimizer} lr {task.lr:g}"
    if protocol == "knn":
        return f"knn: cosine kNN on frozen pooled features, k={task.knn_k}"
    return f"{protocol}: {task.task_kind.frozen_protocols[protocol]}"


def markdown(report: dict, config: EvaluateConfig) -> str:
    """report.md: protocol, then per task and protocol the summary, the paired comparisons and the per-unit table."""
    reference = report["reference"]
    lines = [
        f"# {report['title']}",
        "",
        "## Protocol",
        "",
        f"- {config.n_folds}-fold cross-validation x {config.repeats} repeat(s); model selection (finetune): "
        + (
            "**on the test fold (paper-compatible, optimistic)**"
            if config.selection == "test_fold_best_epoch"
            else f"inner validation split ({config.val_fraction:.0%} of each training part, group-aware)"
        ),
        f"- backbone {config.library}.{config.arch}; fold seed {config.seed} + repeat, fold k of repeat r trains "
        f"with seed {config.seed} + 1000 r + k for every init alike",
        f"- ratios in %, HD95 in pixels at the task's image size; mean ± std over folds x repeats; {STD_NOTE}",
        f"- paired comparisons against `{reference}`: mean per-unit difference with its 95 % t-interval; "
        "'detectable' is the smallest difference the design detects at 95 % confidence and 80 % power",
        "",
    ]
    lines += ["| task | data | protocols | size | folds |", "|---|---|---|---|---|"]
    for task in config.tasks:
        origin = report["tasks"][task.name]["folds"] or "-"
        protocols = "<br>".join(_protocol_line(task, p) for p in task.protocols)
        lines.append(f"| {task.name} | {task.layout} `{task.root}` | {protocols} | {task.image_size} | {origin} |")
    for task in config.tasks:
        kind, entry = task.task_kind, report["tasks"][task.name]
        for protocol, result in entry["protocols"].items():
            lines += ["", f"## {task.name} · {protocol}", ""]
            inits = result["inits"]
            if not inits:
                lines.append("No results yet.")
                continue
            lines += _summary_table(kind, inits)
            if result["comparisons"]:
                lines += ["", f"Paired differences to `{reference}` ({kind.headline}):", ""]
                for label, comparison in result["comparisons"].items():
                    values = comparison[kind.headline]
                    scale, unit = _scale(kind, kind.headline)
                    lines.append(f"- {_sentence(label, reference, values, scale, unit)}")
            lines += ["", f"Per unit ({kind.headline}):", ""] + _unit_table(kind, inits)
    lines += [
        "",
        "Figures: `figures/` (headline bars with unit dots per protocol, confusion matrices, segmentation overlays).",
        "",
    ]
    return "\n".join(lines)


def _sentence(label: str, reference: str, values: dict, scale: float, unit: str) -> str:
    from anaus_pl.evaluation.statistics import PairedComparison

    fields = {k: values[k] for k in PairedComparison.__dataclass_fields__}
    return PairedComparison(**fields).sentence(label, reference, scale, unit)


def _summary_table(kind: DownstreamKind, inits: dict) -> list[str]:
    best = {
        name: (max if kind.higher_is_better(name) else min)(e["mean"][name] for e in inits.values())
        for name in kind.metrics
    }
    extras = list(kind.extra_columns(next(iter(inits.values()))))
    header = ["init", *kind.metrics, *extras, "units"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, entry in inits.items():
        cells = []
        for name in kind.metrics:
            text = _cell(kind, name, entry["mean"][name], entry["std"][name])
            cells.append(f"**{text}**" if len(inits) > 1 and np.isclose(entry["mean"][name], best[name]) else text)
        cells += list(kind.extra_columns(entry).values())
        lines.append(f"| {label}{schedule_note(entry['init'])} | " + " | ".join(cells) + f" | {len(entry['folds'])} |")
    return lines


def _unit_table(kind: DownstreamKind, inits: dict) -> list[str]:
    units = sorted({(u["repeat"], u["fold"]) for e in inits.values() for u in e["folds"]})
    scale, _ = _scale(kind, kind.headline)
    lines = ["| init | " + " | ".join(f"r{r} f{k}" for r, k in units) + " |", "|---|" + "---|" * len(units)]
    for label, entry in inits.items():
        values = {(u["repeat"], u["fold"]): u[kind.headline] for u in entry["folds"]}
        lines.append(
            f"| {label} | " + " | ".join(f"{scale * values[u]:.1f}" if u in values else "-" for u in units) + " |"
        )
    return lines


def build_report(out_dir: str | Path, config: EvaluateConfig) -> Path:
    """Write report.json, report.md, figures/*.png and the TensorBoard report; returns report.json's path."""
    from torch.utils.tensorboard import SummaryWriter

    from anaus_pl.evaluation.figures import bar_figure

    out_dir = Path(out_dir)
    report = collect(out_dir, config)
    write_json(out_dir / "report.json", report, indent=1)
    text = markdown(report, config)
    write_text(out_dir / "report.md", text)
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(exist_ok=True)
    writer = SummaryWriter(str(out_dir / "tensorboard" / "report"))
    writer.add_text("report", text)
    for task in config.tasks:
        kind = task.task_kind
        for protocol, result in report["tasks"][task.name]["protocols"].items():
            inits = result["inits"]
            if not inits:
                continue
            title = f"{task.name} ({protocol})"
            figures = {kind.headline: bar_figure(title, kind.headline, inits, not kind.higher_is_better())}
            figures.update(
                kind.figures(
                    task.name, protocol, inits, out_dir / "results" / task.name / protocol, config.overlay_cases
                )
            )
            for name, figure in figures.items():
                stem = f"{task.name}_{protocol}_{name}"
                figure.savefig(figures_dir / f"{stem}.png", dpi=110)
                writer.add_figure(f"report/{stem}", figure)  # closes the figure
    writer.close()
    return out_dir / "report.json"
