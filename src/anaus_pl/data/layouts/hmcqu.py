"""HMC-QU apical 4-chamber echo videos with LV-wall (myocardium) masks for one cardiac cycle.

Kaggle layout: ``A4C.xlsx``, ``HMC-QU/A4C/ES0001 _4CH_1.avi`` (note the space; not every
name has it), ``LV Ground-truth Segmentation Masks/Mask_ES0001 _4CH_1.mat`` (variable
``predicted``, ``(F, 224, 224)`` of 0/1, F = End of Cycle - Reference Frame + 1).
"""

from __future__ import annotations

import re
from pathlib import Path

from anaus_pl.data.io import VIDEO_SUFFIXES, suffix_of
from anaus_pl.data.layouts._segmentation import PairedLayout
from anaus_pl.data.layouts._tree import child, find_dir, resolve
from anaus_pl.data.layouts._xlsx import Table, read_table
from anaus_pl.data.layouts.base import LayoutError, SampleRef, register

MASK_DIR = "LV Ground-truth Segmentation Masks"


def name_key(name: str) -> str:
    """Match key for recording names whose spaces differ between the xlsx, videos and masks."""
    return re.sub(r"\s+", "", name).lower()


def column(table: Table, path: Path, words: tuple[str, ...], position: int) -> str:
    """The header containing one of ``words``, else the column at ``position`` (the Kaggle order)."""
    for header in table.header:
        if any(word in header.lower() for word in words):
            return header
    if len(table.header) <= abs(position):
        raise LayoutError(f"{path}: no column like {words[0]!r} in {table.header}")
    return table.header[position]


@register
class HMCQU(PairedLayout):
    """Myocardium masks on every frame of one annotated cardiac cycle per A4C recording.

    Frames are taken from the 1-based, inclusive ``Reference Frame``..``End of Cycle``
    range of ``A4C.xlsx``; the patient is the ``ESxxxx`` prefix. The masks were
    drawn on 224x224 resized frames, so the frame is resized (area interpolation)
    to the mask's grid. Recordings without a mask file are not listed.
    """

    name = "hmcqu"
    anatomy = ("myocardium",)
    resize_image_to_mask = True

    def __init__(self, root: str | Path, stride: int = 1) -> None:
        """``stride``: keep every ``stride``-th annotated frame of each cycle (neighbours are near duplicates)."""
        super().__init__(root)
        if stride < 1:
            raise LayoutError(f"hmcqu: stride must be >= 1, got {stride}")
        self.stride = stride

    def index(self) -> list[SampleRef]:
        base = find_dir(self.root, "A4C.xlsx", MASK_DIR, layout=self.name)
        table_path = resolve(base, "A4C.xlsx")
        table = read_table(table_path)
        echo_col = column(table, table_path, ("echo",), 0)
        start_col = column(table, table_path, ("reference",), -3)
        end_col = column(table, table_path, ("end of cycle", "end"), -2)
        masks = {
            name_key(path.stem[len("mask_") :]): path
            for path in child(base, MASK_DIR).glob("*.mat")
            if path.stem.lower().startswith("mask_")
        }
        video_dir = resolve(base, "HMC-QU/A4C") or base
        videos = {name_key(path.stem): path for path in video_dir.rglob("*") if suffix_of(path) in VIDEO_SUFFIXES}
        refs = []
        for row in table.rows:
            echo = str(row.get(echo_col) or "").strip()
            mask = masks.get(name_key(echo))
            if not echo or mask is None:
                continue
            try:
                start, end = int(row[start_col]), int(row[end_col])
            except (TypeError, ValueError) as error:
                raise LayoutError(f"{table_path}: row {echo!r} has no integer frame range ({error})") from error
            video = videos.get(name_key(echo), video_dir / f"{echo}.avi")
            patient = re.split(r"[_\s]", echo)[0]
            refs += [
                SampleRef(
                    source=f"{video}#{start - 1 + k}", patient=patient, files={"masks": (f"{mask}#{k}",), "value": 1}
                )
                for k in range(0, end - start + 1, self.stride)
            ]
        return refs
