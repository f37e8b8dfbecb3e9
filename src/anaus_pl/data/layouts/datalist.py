"""Your own images listed in a CSV or JSON file: one row per image, paths relative to the file.

Columns (CSV header or JSON keys): ``image`` (required), then ``mask`` (segmentation) or
``label`` (classification; class names as text), and optionally ``group`` (patient / video id:
all its rows stay on one side of a split) and ``fold`` (your own cross-validation folds). A list
with ``image`` only is a set of unlabeled frames. JSON is a list of such records, or an object
holding one (``key`` names it when there are several, e.g. ``training``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anaus_pl.data.layouts._generic import AnatomySpec, GenericLayout, class_names_of
from anaus_pl.data.layouts.base import LayoutError, SampleRef, natural_key, register

COLUMNS = ("image", "mask", "label", "group", "fold")


@register
class Datalist(GenericLayout):
    """A CSV or JSON list of images with masks or class labels; ``root`` is the list file.

    Args:
        root: the ``.csv`` or ``.json`` file.
        anatomy: names of the mask values (see :mod:`anaus_pl.data.layouts._generic`).
        classes: class names in label order (default: every label found, sorted).
        key: the JSON object's entry holding the records (default: its only list).
    """

    name = "datalist"
    root_is_file = True

    def __init__(
        self, root: str | Path, anatomy: AnatomySpec = None, classes: list[str] | None = None, key: str | None = None
    ) -> None:
        super().__init__(root, anatomy)
        self.key = key
        self.rows = self._read()
        columns = set().union(*(row.keys() for row in self.rows))
        unknown = sorted(columns - set(COLUMNS))
        if unknown or "image" not in columns:
            raise LayoutError(
                f"{self.root}: columns {sorted(columns)}; expected 'image' and any of "
                f"{list(COLUMNS[1:])} (unknown: {unknown})"
            )
        if "mask" in columns and "label" in columns:
            raise LayoutError(f"{self.root}: give 'mask' (segmentation) or 'label' (classification), not both")
        self.task = "segmentation" if "mask" in columns else "classification" if "label" in columns else "frames"
        for column in {"mask", "label"} & columns:
            missing = [number for number, row in self._numbered() if not row.get(column)]
            if missing:
                raise LayoutError(f"{self.root}: rows {missing[:5]} have no {column!r}; every row needs one")
        if self.task == "classification":
            self.class_names = class_names_of([row["label"] for row in self.rows], classes, str(self.root))

    def _read(self) -> list[dict[str, str]]:
        suffix = self.root.suffix.lower()
        try:
            if suffix == ".csv":
                with self.root.open(newline="", encoding="utf-8-sig") as handle:
                    records: Any = list(csv.DictReader(handle))
            elif suffix == ".json":
                records = json.loads(self.root.read_text())
            else:
                raise LayoutError(f"{self.root}: a data list is a .csv or .json file")
        except (OSError, ValueError, csv.Error) as error:
            raise LayoutError(f"{self.root}: cannot read the data list ({error})") from error
        if isinstance(records, Mapping):
            lists = {name: value for name, value in records.items() if isinstance(value, list)}
            if self.key is not None and self.key not in lists:
                raise LayoutError(f"{self.root}: no list {self.key!r}; lists in the file: {sorted(lists)}")
            if self.key is None and len(lists) != 1:
                raise LayoutError(f"{self.root}: {len(lists)} lists {sorted(lists)}; choose one with key=NAME")
            records = lists[self.key] if self.key is not None else next(iter(lists.values()))
        if not isinstance(records, list) or not all(isinstance(row, Mapping) for row in records):
            raise LayoutError(f"{self.root}: expected a list of records with an 'image' entry")
        if not records:
            raise LayoutError(f"{self.root}: the data list is empty")
        return [
            {str(name).strip(): str(value).strip() for name, value in row.items() if value not in (None, "")}
            for row in records
        ]

    def _numbered(self) -> list[tuple[int, dict[str, str]]]:
        """Rows with the number a user finds them at (the CSV line, the JSON position)."""
        first = 2 if self.root.suffix.lower() == ".csv" else 0
        return list(enumerate(self.rows, first))

    def _path(self, text: str) -> str:
        path, sep, frame = text.partition("#")
        resolved = Path(path).expanduser()
        resolved = resolved if resolved.is_absolute() else self.root.parent / resolved
        return f"{resolved}{sep}{frame}"

    def index(self) -> list[SampleRef]:
        refs = []
        for row in self.rows:
            files: dict[str, Any] = {}
            if self.task == "segmentation":
                files = {"masks": (self._path(row["mask"]),), **self.encoding}
            label = self.class_names.index(row["label"]) if self.task == "classification" else None
            refs.append(SampleRef(source=self._path(row["image"]), label=label, patient=row.get("group"), files=files))
        return refs

    def official_folds(self) -> list[list[str]] | None:
        """The ``fold`` column's folds (sorted by fold name), or None when the list has none."""
        folds = [row.get("fold") for row in self.rows]
        if not any(folds):
            return None
        missing = [number for number, row in self._numbered() if not row.get("fold")]
        if missing:
            raise LayoutError(f"{self.root}: rows {missing[:5]} have no 'fold'; give every row one or none")
        sources = [ref.source for ref in self.index()]
        return [
            [source for source, fold in zip(sources, folds) if fold == name]
            for name in sorted(set(folds), key=natural_key)
        ]
