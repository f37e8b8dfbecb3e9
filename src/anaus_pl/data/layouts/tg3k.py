"""TG3K thyroid gland frames (``tg3k/thyroid-{image,mask}/NNNN.jpg`` + ``tg3k-trainval.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from anaus_pl.data.layouts._segmentation import PairedLayout, pair_refs
from anaus_pl.data.layouts._tree import find_dir, image_files, indexed_subset, resolve
from anaus_pl.data.layouts.base import LayoutError, SampleRef, register


@register
class TG3K(PairedLayout):
    """Thyroid gland; JPEG masks with compression noise (thresholded at 127).

    ``split`` selects ``all`` frames or the ``train`` / ``val`` list of ``tg3k-trainval.json``.
    """

    name = "tg3k"
    anatomy = ("thyroid_gland",)

    def __init__(self, root: str | Path, split: Literal["all", "train", "val"] = "all") -> None:
        super().__init__(root)
        if split not in ("all", "train", "val"):
            raise LayoutError(f"tg3k: unknown split {split!r}; choose all, train or val")
        self.split = split

    def index(self) -> list[SampleRef]:
        base = find_dir(self.root, "thyroid-image", "thyroid-mask", layout=self.name)
        images = image_files(resolve(base, "thyroid-image"))
        if self.split != "all":
            split_file = resolve(base, "tg3k-trainval.json")
            if split_file is None:
                raise LayoutError(f"{base}: tg3k-trainval.json not found; it is needed for split={self.split!r}")
            images = indexed_subset(images, split_file, self.split)
        return pair_refs(resolve(base, "thyroid-image"), resolve(base, "thyroid-mask"), images=images)
