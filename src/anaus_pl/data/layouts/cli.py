"""``anaus-pl datasets check --layout NAME --root DIR``: decode a whole tree and summarise it as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from anaus_pl.data.layouts import LAYOUTS, Layout, LayoutError, _load_readers, get_layout


def summarize(layout: Layout) -> dict[str, Any]:
    """Index and decode every item: counts per class label / anatomy name, patients, and problems."""
    refs = layout.index()
    classes: Counter[str] = Counter()
    problems = []
    for ref in tqdm(refs, desc=f"checking {layout.name}", unit="item", leave=False, file=sys.stderr):
        if ref.label is not None:
            classes[layout.class_names[ref.label]] += 1
        try:
            sample = layout.load(ref)
        except (ValueError, OSError) as error:
            problems.append(str(error))
            continue
        if sample.mask is not None:
            for value in np.unique(sample.mask):
                if value:
                    classes[
                        layout.anatomy[value - 1] if value <= len(layout.anatomy) else f"unknown value {value}"
                    ] += 1
    patients = {ref.patient for ref in refs if ref.patient is not None}
    return {
        "layout": layout.name,
        "root": str(layout.root),
        "task": layout.task,
        "n_items": len(refs),
        "classes": dict(sorted(classes.items())),
        "n_patients": len(patients) if patients else None,
        "problems": problems,
    }


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as YAML (``stride=5``, ``probes=[convex,linear]``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def parser() -> argparse.ArgumentParser:
    _load_readers()
    root = argparse.ArgumentParser(prog="anaus-pl datasets", description="Inspect public data set trees.")
    commands = root.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check", help="decode every item of a tree and print a JSON summary (exit 1 on problems)"
    )
    check.add_argument("--layout", required=True, help=f"one of: {', '.join(sorted(LAYOUTS))}")
    check.add_argument("--root", required=True, help="the folder the data set was unpacked to")
    check.add_argument(
        "--option",
        "-o",
        action="append",
        type=parse_option,
        default=[],
        metavar="KEY=VALUE",
        help="reader option, e.g. -o stride=5 (see data/README.md)",
    )
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the tree is clean, 1 when problems were found, 2 when the tree or layout cannot be read."""
    args = parser().parse_args(argv)
    try:
        layout = get_layout(args.layout, args.root, **dict(args.option))
        summary = summarize(layout)
    except LayoutError as error:
        print(f"anaus-pl datasets check: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 1 if summary["problems"] else 0
