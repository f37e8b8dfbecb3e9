"""Downstream task kinds as objects: each owns its head, loss, monitor, metrics, headline, stratification and figures.

A new kind is one module defining a :class:`DownstreamKind` subclass plus its
``register_kind`` line here; the runner, the report, the fine-tuning module
and the study only talk to the object.
"""

from __future__ import annotations

from anaus_pl.evaluation.kinds.base import DownstreamKind
from anaus_pl.evaluation.kinds.classification import Classification
from anaus_pl.evaluation.kinds.segmentation import Segmentation

KINDS: dict[str, DownstreamKind] = {}


def register_kind(kind: DownstreamKind) -> DownstreamKind:
    """Make ``kind`` available to task configs under ``kind.name``."""
    if kind.name in KINDS and type(KINDS[kind.name]) is not type(kind):
        raise ValueError(
            f"a downstream kind named {kind.name!r} is already registered ({type(KINDS[kind.name]).__name__})"
        )
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> DownstreamKind:
    """The registered kind called ``name``; a clear error lists the known ones."""
    if name not in KINDS:
        raise ValueError(f"unknown downstream task kind {name!r}; registered kinds: {sorted(KINDS)}")
    return KINDS[name]


register_kind(Classification())
register_kind(Segmentation())

__all__ = ["KINDS", "DownstreamKind", "get_kind", "register_kind"]
