"""POCUS lung ultrasound as committed to ``jannisborn/covid19_ultrasound``.

``data/pocus_videos/<probe>/*`` and ``data/pocus_images/<probe>/*``; the class is
the file-name prefix (``Cov``, ``Pne``/``pne``, ``Reg``; ``Vir`` and others are
left out, as in the official ``build_image_dataset.py``).
"""

from __future__ import annotations

from pathlib import Path

from anaus_pl.data.io import VIDEO_SUFFIXES, suffix_of
from anaus_pl.data.layouts._frames import FrameLayout
from anaus_pl.data.layouts._tree import find_dir, image_files, resolve
from anaus_pl.data.layouts._video import video_frame_refs
from anaus_pl.data.layouts.base import LayoutError, SampleRef, natural_key, register

PREFIXES = {"cov": 0, "pne": 1, "reg": 2}
PROBES = ("convex", "linear")


def label_of(path: Path) -> int | None:
    """Class from the first three letters of the file name (case-insensitive)."""
    return PREFIXES.get(path.name[:3].lower())


@register
class POCUS(FrameLayout):
    """COVID-19 / pneumonia / regular frames; each frame's ``patient`` is its video (or still) file name.

    Videos are sampled like the official script, every ``int(fps / 3)``-th frame
    (3 Hz) up to ``max_frames`` per video, unless ``stride`` fixes the step.
    All still images are read (the official script skips ``.JPG``/``.jpeg``).
    """

    name = "pocus"
    task = "classification"
    class_names = ("covid", "pneumonia", "regular")

    def __init__(
        self,
        root: str | Path,
        probes: tuple[str, ...] | list[str] = ("convex",),
        stride: int | None = None,
        max_frames: int | None = 30,
        rate_hz: float = 3.0,
    ) -> None:
        super().__init__(root)
        unknown = sorted(set(probes) - set(PROBES))
        if unknown or not probes:
            raise LayoutError(f"pocus: unknown probes {unknown or probes}; choose from {PROBES}")
        if stride is not None and stride < 1:
            raise LayoutError(f"pocus: stride must be >= 1, got {stride}")
        self.probes, self.stride, self.max_frames, self.rate_hz = tuple(probes), stride, max_frames, rate_hz

    def index(self) -> list[SampleRef]:
        base = find_dir(self.root, "pocus_videos", layout=self.name)
        refs = []
        for probe in self.probes:
            video_dir = resolve(base, f"pocus_videos/{probe}")
            for video in sorted(video_dir.iterdir(), key=lambda path: natural_key(path.name)) if video_dir else ():
                if suffix_of(video) in VIDEO_SUFFIXES and label_of(video) is not None:
                    refs += video_frame_refs(
                        video,
                        stride=self.stride,
                        rate_hz=self.rate_hz,
                        max_frames=self.max_frames,
                        label=label_of(video),
                        patient=video.name,
                    )
            image_dir = resolve(base, f"pocus_images/{probe}")
            for image in image_files(image_dir) if image_dir else ():
                if label_of(image) is not None:
                    refs.append(SampleRef(source=str(image), label=label_of(image), patient=image.name))
        return refs
