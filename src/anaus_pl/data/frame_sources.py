"""Unlabeled frames for annotation: which frames an input names, and decoding them.

An input (:class:`FrameInput`) is one of

* a folder, searched recursively for still images and videos, filtered by
  ``include`` / ``exclude`` patterns (``fnmatch`` on the path relative to the
  folder; ``*`` also crosses ``/``);
* a single image or video file;
* a data set root read through a registered layout (``layout: camus``), whose
  frames are used without their labels.

Videos contribute every ``frame_stride``-th frame, at most
``max_frames_per_video`` of them. Indexing decodes nothing: a video's length
comes from its container. Frames are decoded later by :class:`FrameDecoder`,
which reads videos forward with one open capture per worker (exact frame
indices, no seeking).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anaus_pl.data.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, FrameReadError, read_image, split_source, suffix_of, to_uint8_gray
from anaus_pl.data.layouts import Layout, SampleRef, get_layout
from anaus_pl.data.layouts.base import natural_key


@dataclass
class FrameInput:
    """One source of unlabeled frames (a folder, a file, or a data set via its layout)."""

    path: str
    layout: str | None = None
    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    frame_stride: int = 1
    max_frames_per_video: int | None = None

    def __post_init__(self) -> None:
        if self.frame_stride < 1:
            raise ValueError(f"input {self.path}: frame_stride must be >= 1, got {self.frame_stride}")
        if self.max_frames_per_video is not None and self.max_frames_per_video < 1:
            raise ValueError(f"input {self.path}: max_frames_per_video must be >= 1 or null, got {self.max_frames_per_video}")


@dataclass(frozen=True)
class FrameRef:
    """One frame to annotate: its source string and how to decode it."""

    source: str
    input_index: int
    layout_ref: SampleRef | None = None
    error: str | None = None  # an indexing failure, reported when the frame is decoded


def _selected(relative: str, spec: FrameInput) -> bool:
    return any(fnmatch.fnmatch(relative, p) for p in spec.include) and not any(fnmatch.fnmatch(relative, p) for p in spec.exclude)


def _video_length(path: Path) -> tuple[int, str | None]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return 0, f"{path}: OpenCV cannot open this video (convert it to mp4 (H.264) or extract its frames as PNG)"
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        return count, None if count > 0 else f"{path}: video reports no frames (the file is empty or corrupt)"
    finally:
        capture.release()


def _strided(indices: list[int], spec: FrameInput) -> list[int]:
    return indices[::spec.frame_stride][:spec.max_frames_per_video]


def _file_refs(path: Path, input_index: int, spec: FrameInput) -> list[FrameRef]:
    if suffix_of(path) not in VIDEO_SUFFIXES:
        return [FrameRef(str(path), input_index)]
    count, error = _video_length(path)
    if error:
        return [FrameRef(f"{path}#0", input_index, error=error)]
    return [FrameRef(f"{path}#{k}", input_index) for k in _strided(list(range(count)), spec)]


def _layout_refs(layout: Layout, input_index: int, spec: FrameInput) -> list[FrameRef]:
    groups: dict[str, list[tuple[int, SampleRef]]] = {}
    for ref in layout.index():
        path, frame = split_source(ref.source)
        relative = path.relative_to(layout.root).as_posix() if path.is_relative_to(layout.root) else path.as_posix()
        if _selected(relative, spec):
            groups.setdefault(str(path), []).append((frame or 0, ref))
    refs = []
    for members in groups.values():
        chosen = members if len(members) == 1 else [members[k] for k in _strided(list(range(len(members))), spec)]
        refs += [FrameRef(ref.source, input_index, layout_ref=ref) for _, ref in chosen]
    return refs


def index_inputs(inputs: list[FrameInput]) -> tuple[list[FrameRef], list[Layout | None]]:
    """Every frame the inputs name, in input order then natural path order, each source once.

    Returns the frames and, per input, its layout reader (``None`` for folders and files).
    """
    refs: list[FrameRef] = []
    layouts: list[Layout | None] = []
    for i, spec in enumerate(inputs):
        root = Path(spec.path)
        if spec.layout is not None:
            layout = get_layout(spec.layout, str(root))
            layouts.append(layout)
            refs += _layout_refs(layout, i, spec)
            continue
        layouts.append(None)
        if root.is_file():
            refs += _file_refs(root, i, spec)
        elif root.is_dir():
            files = [p for p in root.rglob("*") if p.is_file() and suffix_of(p) in IMAGE_SUFFIXES | VIDEO_SUFFIXES
                     and _selected(p.relative_to(root).as_posix(), spec)]
            for path in sorted(files, key=lambda p: natural_key(p.relative_to(root).as_posix())):
                refs += _file_refs(path, i, spec)
        else:
            raise FileNotFoundError(f"annotate input {root} does not exist; fix data.init_args.inputs[{i}].path "
                                    "(make data writes the phantom default)")
    seen: set[str] = set()
    unique = [r for r in refs if not (r.source in seen or seen.add(r.source))]
    return unique, layouts


class FrameDecoder:
    """Decodes :class:`FrameRef` s; keeps one video open and reads it forward.

    Not thread-safe; each DataLoader worker gets its own copy (the open video
    is never pickled).
    """

    def __init__(self, layouts: list[Layout | None]) -> None:
        self.layouts = layouts
        self._video: tuple[str, object, int] | None = None  # (path, capture, index of the next frame)

    def __getstate__(self) -> dict:
        return {"layouts": self.layouts, "_video": None}

    def decode(self, ref: FrameRef) -> np.ndarray:
        """The frame as ``uint8 (H, W)``; raises :class:`FrameReadError` naming the file."""
        if ref.error:
            raise FrameReadError(split_source(ref.source)[0], ref.error.split(": ", 1)[-1])
        layout = self.layouts[ref.input_index]
        if layout is not None:
            return layout.load(ref.layout_ref).image
        path, frame = split_source(ref.source)
        if suffix_of(path) in VIDEO_SUFFIXES:
            return self._video_frame(path, frame or 0)
        return read_image(path)

    def _video_frame(self, path: Path, frame: int) -> np.ndarray:
        import cv2

        if self._video is None or self._video[0] != str(path) or self._video[2] > frame:
            self.close()
            capture = cv2.VideoCapture(str(path))
            if not capture.isOpened():
                raise FrameReadError(path, "OpenCV cannot open this video", "convert it to mp4 (H.264) or extract its frames as PNG")
            self._video = (str(path), capture, 0)
        name, capture, position = self._video
        while position < frame:
            if not capture.grab():
                self.close()
                raise FrameReadError(path, f"frame {frame} is past the end of the video ({position} frames decode)",
                                     "the container's frame count is wrong or the file is truncated")
            position += 1
        ok, image = capture.read()
        self._video = (name, capture, position + 1)
        if not ok:
            self.close()
            raise FrameReadError(path, f"frame {frame} does not decode", "the file is truncated or corrupt: re-export it")
        return to_uint8_gray(image[..., ::-1] if image.ndim == 3 else image, f"{path}#{frame}")

    def close(self) -> None:
        if self._video is not None:
            self._video[1].release()
            self._video = None
