"""Cross-validation folds: stratified, group-aware (patient / video), seeded.

A fold is a list of sample sources. Items that share a group (the reader's
``SampleRef.patient``, else the file part of ``path#frame`` so that frames of
one video stay together) always fall into the same fold. For classification
the folds are stratified: groups are placed, largest first, into the fold
that keeps each class's share most even across folds (the criterion of
scikit-learn's ``StratifiedGroupKFold``; scikit-learn is not a dependency).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from anaus_pl.atomic import write_json
from anaus_pl.data.layouts.base import SampleRef


def group_of(ref: SampleRef) -> str:
    """The unit that must not straddle folds: the patient id, else the file of ``path#frame``."""
    return ref.patient if ref.patient else ref.source.split("#", 1)[0]


def make_folds(refs: Sequence[SampleRef], n_folds: int, seed: int, stratify: bool) -> list[list[str]]:
    """Split ``refs`` into ``n_folds`` disjoint, complete lists of sources.

    Deterministic for a given ``seed``. Stratification uses ``ref.label``
    (a group's labels count towards its fold's histogram).
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    groups: dict[str, list[SampleRef]] = defaultdict(list)
    for ref in refs:
        groups[group_of(ref)].append(ref)
    if len(groups) < n_folds:
        raise ValueError(f"{len(groups)} groups (patients/videos/images) cannot fill {n_folds} folds")
    labels = sorted({ref.label for ref in refs if ref.label is not None}) if stratify else []
    if stratify and any(ref.label is None for ref in refs):
        raise ValueError("stratified folds need a class label on every sample")
    column = {label: i for i, label in enumerate(labels)}
    names = sorted(groups)
    counts = np.zeros((len(names), max(1, len(labels))))
    for row, name in enumerate(names):
        for ref in groups[name]:
            counts[row, column[ref.label] if stratify else 0] += 1
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    # Largest groups first (ties in the seeded random order): they are the hardest to balance.
    order = order[np.argsort(-counts[order].sum(1), kind="stable")]
    class_totals = counts.sum(0)
    fold_counts = np.zeros((n_folds, counts.shape[1]))
    assignment: list[list[str]] = [[] for _ in range(n_folds)]
    for row in order:
        costs = []
        for fold in range(n_folds):
            trial = fold_counts.copy()
            trial[fold] += counts[row]
            # Spread of each class's share across folds (also balances fold sizes); ties go to the smaller fold.
            costs.append((float(np.std(trial / class_totals, axis=0).mean()), trial[fold].sum(), fold))
        fold = min(costs)[2]
        fold_counts[fold] += counts[row]
        assignment[fold].append(names[row])
    return [sorted((ref.source for name in fold for ref in groups[name])) for fold in assignment]


def restrict_official(
    official: Sequence[Sequence[str]], refs: Sequence[SampleRef]
) -> tuple[list[list[str]], list[str]]:
    """Official folds limited to indexed sources, plus the indexed sources they leave out.

    TN3K's official folds, for example, cover its ``trainval`` part only; the
    ``test`` part is then left out of the cross-validation (and reported as such).
    """
    known = {ref.source for ref in refs}
    folds = [[source for source in fold if source in known] for fold in official]
    seen = [source for fold in folds for source in fold]
    if len(seen) != len(set(seen)):
        raise ValueError("the layout's official folds overlap: a source is in two folds")
    if any(not fold for fold in folds):
        raise ValueError("an official fold holds none of the indexed samples; check the data root")
    covered = set(seen)
    return folds, sorted(known - covered)


def inner_split(
    refs: Sequence[SampleRef], fraction: float, seed: int, stratify: bool
) -> tuple[list[SampleRef], list[SampleRef]]:
    """Split a fold's training part into (train, validation), group-aware, about ``fraction`` for validation."""
    if not 0 < fraction < 0.5:
        raise ValueError(f"validation fraction must be in (0, 0.5), got {fraction}")
    n_parts = max(2, round(1 / fraction))
    n_groups = len({group_of(ref) for ref in refs})
    folds = make_folds(refs, min(n_parts, n_groups), seed, stratify)
    validation = set(folds[0])
    return [r for r in refs if r.source not in validation], [r for r in refs if r.source in validation]


def subsample(refs: Sequence[SampleRef], fraction: float, seed: int, stratify: bool) -> list[SampleRef]:
    """A seeded ``fraction`` of ``refs`` (order kept), per class when ``stratify``; at least one per class."""
    if fraction >= 1:
        return list(refs)
    groups: dict[object, list[int]] = {}
    for i, ref in enumerate(refs):
        groups.setdefault(ref.label if stratify else None, []).append(i)
    rng = np.random.default_rng(seed)
    keep: set[int] = set()
    for key in sorted(groups, key=str):
        members = groups[key]
        keep.update(rng.choice(members, size=max(1, round(fraction * len(members))), replace=False).tolist())
    return [ref for i, ref in enumerate(refs) if i in keep]


def save_folds(
    path: str | Path, folds: Sequence[Sequence[str]], origin: str, seed: int | None, excluded: Sequence[str] = ()
) -> None:
    """Write the folds as JSON (lists of sources) with where they came from."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"origin": origin, "seed": seed, "folds": [list(f) for f in folds], "excluded": list(excluded)}
    write_json(path, payload, indent=1)
