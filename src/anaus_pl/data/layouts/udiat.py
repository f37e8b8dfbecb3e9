"""UDIAT Dataset B breast lesions (``Dataset_B/{original,GT}/NNNNNN.png`` + ``DatasetB.xlsx``)."""

from __future__ import annotations

from pathlib import Path

from anaus_pl.data.layouts._segmentation import PairedLayout, pair_refs
from anaus_pl.data.layouts._tree import find_dir, resolve
from anaus_pl.data.layouts._xlsx import read_table
from anaus_pl.data.layouts.base import LayoutError, SampleRef, register


def read_types(path: Path | None) -> dict[int, int]:
    """``DatasetB.xlsx`` as ``{image number: 0 benign | 1 malignant}``; empty if absent."""
    if path is None:
        return {}
    table = read_table(path)
    image_column = next((c for c in table.header if c.lower() == "image"), None)
    type_column = next((c for c in table.header if c.lower() == "type"), None)
    if image_column is None or type_column is None:
        raise LayoutError(f"{path}: expected columns 'Image' and 'Type', found {table.header}")
    types = {}
    for row in table.rows:
        kind = str(row.get(type_column) or "").strip().lower()
        if row.get(image_column) is not None and kind in ("benign", "malignant"):
            types[int(row[image_column])] = ("benign", "malignant").index(kind)
    return types


@register
class UDIAT(PairedLayout):
    """Breast lesions, 0/255 PNG masks; benign/malignant from ``DatasetB.xlsx`` when present."""

    name = "udiat"
    anatomy = ("breast_lesion",)
    class_names = ("benign", "malignant")

    def index(self) -> list[SampleRef]:
        base = find_dir(self.root, "original", "GT", layout=self.name)
        types = read_types(resolve(base, "DatasetB.xlsx") or resolve(base.parent, "DatasetB.xlsx"))
        return pair_refs(
            resolve(base, "original"),
            resolve(base, "GT"),
            label_of=lambda path: types.get(int(path.stem)) if path.stem.isdigit() else None,
        )
