"""TN3K thyroid nodules (``tn3k/{trainval,test}-{image,mask}/NNNN.jpg``, fold JSONs, label CSVs)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from anaus_pl.data.layouts._segmentation import PairedLayout, pair_refs
from anaus_pl.data.layouts._tree import find_dir, image_files, indexed_subset, resolve
from anaus_pl.data.layouts.base import LayoutError, SampleRef, register

SUBSETS = ("trainval", "test")


def read_label_csv(path: Path | None) -> dict[str, int]:
    """``label4<subset>.csv`` as ``{"0000.jpg": 0|1}`` (0 benign, 1 malignant); empty if absent."""
    if path is None:
        return {}
    labels = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        name, _, value = line.strip().partition(",")
        if value.strip() in ("0", "1"):
            labels[name.strip().lower()] = int(value)
        elif line.strip() and number > 1:
            raise LayoutError(f"{path}: line {number} {line!r} is not '<name>.jpg,<0|1>'")
    return labels


@register
class TN3K(PairedLayout):
    """Thyroid nodules; JPEG masks with compression noise (thresholded at 127).

    ``subset`` picks ``all`` (trainval then test), ``trainval`` or ``test``. Class
    labels (benign/malignant) come from ``label4*.csv`` when present. The official
    folds are the five ``tn3k-trainval-fold{k}.json`` ``val`` lists, indices into
    the trainval files in natural order; the test set is in no fold.
    """

    name = "tn3k"
    anatomy = ("thyroid_nodule",)
    class_names = ("benign", "malignant")

    def __init__(self, root: str | Path, subset: Literal["all", "trainval", "test"] = "all") -> None:
        super().__init__(root)
        if subset not in ("all", *SUBSETS):
            raise LayoutError(f"tn3k: unknown subset {subset!r}; choose all, trainval or test")
        self.subset = subset

    def _base(self) -> Path:
        return find_dir(self.root, "trainval-image", "trainval-mask", layout=self.name)

    def index(self) -> list[SampleRef]:
        base = self._base()
        refs = []
        for subset in SUBSETS if self.subset == "all" else (self.subset,):
            image_dir = resolve(base, f"{subset}-image")
            if image_dir is None:
                if self.subset == subset:
                    raise LayoutError(f"{base}: folder {subset}-image not found")
                continue
            labels = read_label_csv(resolve(base, f"label4{subset}.csv"))
            refs += pair_refs(
                image_dir, base / f"{subset}-mask", label_of=lambda path, labels=labels: labels.get(path.name.lower())
            )
        return refs

    def official_folds(self) -> list[list[str]] | None:
        base = self._base()
        split_files = [resolve(base, f"tn3k-trainval-fold{k}.json") for k in range(5)]
        if any(path is None for path in split_files):
            return None
        images = [str(path) for path in image_files(resolve(base, "trainval-image"))]
        return [indexed_subset(images, path, "val") for path in split_files]
