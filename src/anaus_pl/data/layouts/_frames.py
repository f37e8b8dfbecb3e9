"""Loading of image-only items (classification and unlabeled frames)."""

from __future__ import annotations

from anaus_pl.data.io import read_frame
from anaus_pl.data.layouts.base import Layout, Sample, SampleRef


class FrameLayout(Layout):
    """A layout whose items are frames without masks; subclasses implement :meth:`index` only."""

    def load(self, ref: SampleRef) -> Sample:
        return Sample(image=read_frame(ref.source), source=ref.source, label=ref.label, patient=ref.patient)
