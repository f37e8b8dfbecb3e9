"""DDTI, the 637-image TN-SCUI-2020 re-processing (``DDTI/1_or_data/{image,mask}/<n>.PNG``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from anaus_pl.data.layouts._segmentation import PairedLayout, pair_refs
from anaus_pl.data.layouts._tree import find_dir, resolve
from anaus_pl.data.layouts.base import LayoutError, SampleRef, register

STAGE_FOLDERS = {
    "original": ("1_or_data/image", "1_or_data/mask"),
    "stage1": ("2_preprocessed_data/stage1/p_image", "2_preprocessed_data/stage1/p_mask"),
    "stage2": ("2_preprocessed_data/stage2/p_image", "2_preprocessed_data/stage2/p_mask"),
}


@register
class DDTI(PairedLayout):
    """Thyroid nodules; masks are 0/255 in some copies and 0/1 in others (both binarised).

    ``stage`` picks ``original`` (``1_or_data``), ``stage1`` (black borders removed, 256 px)
    or ``stage2`` (nodule ROI, 512 px). A flat ``image/`` + ``mask/`` copy (TRFE-Net's
    ``data/DDTI``) is read when no ``1_or_data`` exists.
    """

    name = "ddti"
    anatomy = ("thyroid_nodule",)

    def __init__(self, root: str | Path, stage: Literal["original", "stage1", "stage2"] = "original") -> None:
        super().__init__(root)
        if stage not in STAGE_FOLDERS:
            raise LayoutError(f"ddti: unknown stage {stage!r}; choose one of {sorted(STAGE_FOLDERS)}")
        self.stage = stage

    def index(self) -> list[SampleRef]:
        images, masks = STAGE_FOLDERS[self.stage]
        try:
            base = find_dir(self.root, images, masks, layout=self.name)
        except LayoutError:
            if self.stage != "original":
                raise
            images, masks = "image", "mask"
            base = self._flat_copy()
        return pair_refs(resolve(base, images), resolve(base, masks))

    def _flat_copy(self) -> Path:
        try:
            return find_dir(self.root, "image", "mask", layout=self.name)
        except LayoutError as error:
            archives = sorted(self.root.rglob("DDTI.zip"))
            if archives:
                raise LayoutError(f"{archives[0]}: DDTI is still zipped; unzip it in place and check again") from error
            raise
