"""CAMUS echocardiography: the 2023 NIfTI release and the 2019 MetaImage release.

2023: ``CAMUS_public/database_nifti/patientNNNN/patientNNNN_{2CH,4CH}_{ED,ES,half_sequence}[_gt].nii.gz``.
2019: ``training/patientNNNN/patientNNNN_{2CH,4CH}_{ED,ES}[_gt].mhd`` (+ ``.raw``); ``testing/`` has no
ground truth and is not read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from anaus_pl.data.io import FrameReadError
from anaus_pl.data.layouts._segmentation import PairedLayout
from anaus_pl.data.layouts._tree import child, find_dir, subdirs
from anaus_pl.data.layouts.base import LayoutError, SampleRef, register

VIEWS = ("2CH", "4CH")
LABELS = {0: 0, 1: 1, 2: 2, 3: 3}  # background, LV cavity, myocardium, left atrium: kept as they are


def sequence_length(path: Path) -> int:
    """Frames of a 2-D+t NIfTI or MetaImage file, read from its header only."""
    try:
        if path.name.lower().endswith((".nii", ".nii.gz")):
            import nibabel

            shape = nibabel.load(str(path)).shape
            return int(shape[2]) if len(shape) > 2 else 1
        import SimpleITK

        reader = SimpleITK.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = reader.GetSize()
        return int(size[2]) if len(size) > 2 else 1
    except Exception as error:  # the format libraries raise many types for broken headers
        raise FrameReadError(path, f"unreadable header ({error})", "the file is corrupt: re-download it") from error


@register
class CAMUS(PairedLayout):
    """LV cavity, myocardium and left atrium (labels 1, 2, 3), patients ``patientNNNN``.

    ``frames="edes"`` reads the manually annotated ED and ES frames of both views;
    ``frames="sequence"`` reads every frame of the 2023 half sequences (their
    in-between masks are interpolated from ED/ES, not drawn by hand).
    """

    name = "camus"
    anatomy = ("lv", "myocardium", "la")

    def __init__(self, root: str | Path, frames: Literal["edes", "sequence"] = "edes") -> None:
        super().__init__(root)
        if frames not in ("edes", "sequence"):
            raise LayoutError(f"camus: unknown frames {frames!r}; choose edes or sequence")
        self.frames = frames

    def _patients(self) -> tuple[list[Path], str]:
        """Patient folders and the file suffix of the release found under the root."""
        try:
            base = find_dir(self.root, "database_nifti", layout=self.name)
            return subdirs(child(base, "database_nifti")), ".nii.gz"
        except LayoutError:
            base = find_dir(self.root, "training", layout=self.name)
            if self.frames == "sequence":
                raise LayoutError(
                    f"{base}: the 2019 release has no sequence ground truth; use frames='edes' "
                    "or the 2023 NIfTI release"
                ) from None
            return subdirs(child(base, "training")), ".mhd"

    def index(self) -> list[SampleRef]:
        patients, suffix = self._patients()
        phases = ("half_sequence",) if self.frames == "sequence" else ("ED", "ES")
        refs = []
        for folder in patients:
            for view in VIEWS:
                for phase in phases:
                    image = folder / f"{folder.name}_{view}_{phase}{suffix}"
                    if not image.is_file():
                        continue
                    mask = folder / f"{folder.name}_{view}_{phase}_gt{suffix}"
                    count = self._frame_count(image) if self.frames == "sequence" else 0
                    sources = [f"{image}#{k}" for k in range(count)] if count else [str(image)]
                    masks = [f"{mask}#{k}" for k in range(count)] if count else [str(mask)]
                    refs += [
                        SampleRef(source=source, patient=folder.name, files={"masks": (mask_source,), "values": LABELS})
                        for source, mask_source in zip(sources, masks)
                    ]
        return refs

    @staticmethod
    def _frame_count(image: Path) -> int:
        try:
            return sequence_length(image)
        except FrameReadError:
            return 1  # keep one item: loading it reports the broken file
