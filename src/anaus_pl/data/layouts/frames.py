"""``frames``: any folder of unlabeled frames, read as the annotate stage reads it.

Still images, videos and DICOM files (single- and multi-frame, with or
without a ``.dcm`` suffix) anywhere under the root; symlinked folders are
followed. ``anaus-pl datasets check --layout frames --root DIR`` decodes every
frame and names each file that does not decode.
"""

from __future__ import annotations

from pathlib import Path

from anaus_pl.data.layouts._frames import FrameLayout
from anaus_pl.data.layouts.base import SampleRef, register


@register
class FrameFolder(FrameLayout):
    """Unlabeled frames under ``root``; options ``stride`` and ``max_frames`` (per video or cine loop)."""

    name = "frames"
    task = "frames"

    def __init__(self, root: str | Path, stride: int = 1, max_frames: int | None = None) -> None:
        super().__init__(root)
        self.stride = stride
        self.max_frames = max_frames

    def index(self) -> list[SampleRef]:
        from anaus_pl.data.frame_sources import FrameInput, index_inputs

        frames, _ = index_inputs(
            [FrameInput(str(self.root), frame_stride=self.stride, max_frames_per_video=self.max_frames)]
        )
        return [SampleRef(source=source) for source in frames.sources()]
