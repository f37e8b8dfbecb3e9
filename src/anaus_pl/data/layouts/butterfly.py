"""Butterfly lung videos as distributed by USCL: one folder of extracted frames per video.

``<root>/<Cls>-<name>_mp4/<Cls>-<name>_mp4_frame<k>.jpg``; the root folder is
``Butte/`` or ``Butterfly_Dataset/`` depending on the copy. Video files found
in the tree are read too, every ``stride``-th frame.
"""

from __future__ import annotations

import os
from pathlib import Path

from anaus_pl.data.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, suffix_of
from anaus_pl.data.layouts._frames import FrameLayout
from anaus_pl.data.layouts._tree import SKIPPED_DIRS
from anaus_pl.data.layouts._video import video_frame_refs
from anaus_pl.data.layouts.base import LayoutError, SampleRef, natural_key, register


@register
class Butterfly(FrameLayout):
    """Unlabeled frames for annotation and pre-training; ``patient`` is the video (folder or file) name.

    Frames of a folder are in natural order of their names (``frame2`` before
    ``frame10``), then every ``stride``-th one is kept.
    """

    name = "butterfly"
    task = "frames"

    def __init__(self, root: str | Path, stride: int = 1) -> None:
        super().__init__(root)
        if stride < 1:
            raise LayoutError(f"butterfly: stride must be >= 1, got {stride}")
        self.stride = stride

    def index(self) -> list[SampleRef]:
        folders = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d.lower() not in SKIPPED_DIRS]
            folders.append((Path(folder), sorted((f for f in files if not f.startswith(".")), key=natural_key)))
        refs = []
        for folder, names in sorted(folders, key=lambda entry: natural_key(entry[0].as_posix())):
            video = folder.relative_to(self.root).as_posix() if folder != self.root else folder.name
            frames = [name for name in names if suffix_of(name) in IMAGE_SUFFIXES]
            refs += [SampleRef(source=str(folder / name), patient=video) for name in frames[:: self.stride]]
            refs += [
                ref
                for name in names
                if suffix_of(name) in VIDEO_SUFFIXES
                for ref in video_frame_refs(
                    folder / name,
                    stride=self.stride,
                    rate_hz=0.0,
                    max_frames=None,
                    patient=(folder / name).relative_to(self.root).as_posix(),
                )
            ]
        if not refs:
            raise LayoutError(
                f"{self.root}: no frame images or videos found for layout 'butterfly' (see data/README.md)"
            )
        return refs
