"""Unlabeled frames for annotation: which frames an input names, and decoding them.

An input (:class:`FrameInput`) is one of

* a folder, searched recursively for still images, videos and DICOM files
  (``.dcm``, or any file with the DICOM ``DICM`` marker), filtered by
  ``include`` / ``exclude`` patterns (``fnmatch`` on the path relative to the
  folder; ``*`` also crosses ``/``). Symlinked folders are followed, each real
  folder once (a link loop is cut); a file reached twice (a symlink and its
  target) is indexed once; dangling links and selected files no reader
  supports are logged, not indexed;
* a single image, video or DICOM file;
* a data set root read through a registered layout (``layout: camus``), whose
  frames are used without their labels.

Videos and multi-frame (cine) DICOM files contribute every ``frame_stride``-th
frame (``path#k``), at most ``max_frames_per_video`` of them. ``classes`` names the anatomy that can appear
in an input's frames (e.g. the cardiac classes for an echocardiography set);
the other classes of the predictor are not labelled in them. Indexing decodes nothing: a video's length
comes from its container. The index is a :class:`FrameTable`: flat numpy
arrays (file paths interned once per file, integer frame numbers), so forked
DataLoader workers reading it touch no per-frame Python objects and their
memory stays flat as the frame count grows. Frames are decoded later by :class:`FrameDecoder`,
which reads videos forward with one open capture per worker (exact frame
indices, no seeking).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import pickle
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anaus_pl.data.io import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    FrameReadError,
    count_dicom_frames,
    is_dicom,
    read_dicom_frames,
    read_image,
    split_source,
    suffix_of,
    to_uint8_gray,
)
from anaus_pl.data.layouts import Layout, SampleRef, get_layout
from anaus_pl.data.layouts.base import natural_key

log = logging.getLogger(__name__)
LISTED = 5  # names shown in a log line about skipped files


@dataclass
class FrameInput:
    """One source of unlabeled frames (a folder, a file, or a data set via its layout).

    ``classes``: the predictor's classes that can appear in these frames (``None``: all of them).
    """

    path: str
    layout: str | None = None
    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    frame_stride: int = 1
    max_frames_per_video: int | None = None
    classes: list[str] | None = None

    def __post_init__(self) -> None:
        if self.frame_stride < 1:
            raise ValueError(f"input {self.path}: frame_stride must be >= 1, got {self.frame_stride}")
        if self.max_frames_per_video is not None and self.max_frames_per_video < 1:
            raise ValueError(
                f"input {self.path}: max_frames_per_video must be >= 1 or null, got {self.max_frames_per_video}"
            )
        if self.classes is not None and (not self.classes or len(set(self.classes)) != len(self.classes)):
            raise ValueError(
                f"input {self.path}: classes must name each class once (null: every class), got {self.classes}"
            )

    def class_mask(self, names: Sequence[str]) -> np.ndarray:
        """``bool (C,)`` over the predictor's class ``names``: True where this input's frames may hold the class."""
        if self.classes is None:
            return np.ones(len(names), bool)
        unknown = [name for name in self.classes if name not in names]
        if unknown:
            raise ValueError(
                f"input {self.path}: classes {unknown} are not classes of the LP-SAM checkpoint; "
                f"valid classes: {', '.join(names)}"
            )
        return np.array([name in self.classes for name in names], bool)


@dataclass(frozen=True)
class FrameRef:
    """One frame to annotate: its source string and how to decode it."""

    source: str
    input_index: int
    layout_ref: SampleRef | None = None
    error: str | None = None  # an indexing failure, reported when the frame is decoded


class FrameTable(Sequence[FrameRef]):
    """An immutable, compact list of :class:`FrameRef` s.

    Each frame is a row of integer arrays: its file (an index into ``paths``, one
    byte string per distinct file), its frame number in that file (``-1``: none),
    its input, and, for the rare frames that carry a layout reference or an
    indexing error, a slice of one pickled byte buffer. ``table[i]`` builds the
    :class:`FrameRef` on demand. Nothing in the table is a per-frame Python
    object, so forked DataLoader workers reading it do not copy its pages
    (pytorch/pytorch#13246).
    """

    def __init__(
        self,
        paths: np.ndarray,
        path_index: np.ndarray,
        frame_index: np.ndarray,
        input_index: np.ndarray,
        extras: np.ndarray,
        extra_offsets: np.ndarray,
        rows: np.ndarray | None = None,
    ) -> None:
        self._paths, self._path_index, self._frame_index, self._input_index = (
            paths,
            path_index,
            frame_index,
            input_index,
        )
        self._extras, self._extra_offsets = extras, extra_offsets
        self._rows = np.arange(len(path_index), dtype=np.int64) if rows is None else rows

    @classmethod
    def from_refs(cls, refs: Iterable[FrameRef]) -> FrameTable:
        """Pack ``refs``; ``source`` strings round-trip exactly."""
        interned: dict[bytes, int] = {}
        path_index, frame_index, input_index, offsets = [], [], [], [0]
        extras = bytearray()
        for ref in refs:
            head, sep, tail = ref.source.rpartition("#")
            frame = int(tail) if sep and tail.isdigit() and f"{head}#{int(tail)}" == ref.source else -1
            key = os.fsencode(head if frame >= 0 else ref.source)
            path_index.append(interned.setdefault(key, len(interned)))
            frame_index.append(frame)
            input_index.append(ref.input_index)
            if ref.layout_ref is not None or ref.error is not None:
                extras += pickle.dumps((ref.layout_ref, ref.error), protocol=pickle.HIGHEST_PROTOCOL)
            offsets.append(len(extras))
        paths = np.array(list(interned), dtype=np.bytes_) if interned else np.zeros(0, np.bytes_)
        return cls(
            paths,
            np.asarray(path_index, np.int32),
            np.asarray(frame_index, np.int64),
            np.asarray(input_index, np.int32),
            np.frombuffer(bytes(extras), np.uint8),
            np.asarray(offsets, np.int64),
        )

    def __len__(self) -> int:
        return len(self._rows)

    def source(self, index: int) -> str:
        """The source string of frame ``index`` (``path`` or ``path#k``)."""
        row = self._rows[index]
        path = os.fsdecode(self._paths[self._path_index[row]])
        frame = int(self._frame_index[row])
        return path if frame < 0 else f"{path}#{frame}"

    def sources(self) -> list[str]:
        """Every source string, in order."""
        return [self.source(i) for i in range(len(self))]

    def __getitem__(self, index: int) -> FrameRef:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"frame {index} out of range for {len(self)} frames")
        row = self._rows[index]
        start, stop = self._extra_offsets[row], self._extra_offsets[row + 1]
        layout_ref, error = pickle.loads(self._extras[start:stop].tobytes()) if stop > start else (None, None)
        return FrameRef(self.source(index), int(self._input_index[row]), layout_ref, error)

    def __iter__(self) -> Iterator[FrameRef]:
        return (self[i] for i in range(len(self)))

    def subset(self, keep: Sequence[int] | np.ndarray) -> FrameTable:
        """The frames at positions ``keep``, in that order (shares the arrays)."""
        return FrameTable(
            self._paths,
            self._path_index,
            self._frame_index,
            self._input_index,
            self._extras,
            self._extra_offsets,
            self._rows[np.asarray(keep, np.int64)],
        )


def _selected(relative: str, spec: FrameInput) -> bool:
    return any(fnmatch.fnmatch(relative, p) for p in spec.include) and not any(
        fnmatch.fnmatch(relative, p) for p in spec.exclude
    )


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
    return indices[:: spec.frame_stride][: spec.max_frames_per_video]


def _file_refs(path: Path, input_index: int, spec: FrameInput) -> list[FrameRef]:
    suffix = suffix_of(path)
    if suffix in VIDEO_SUFFIXES:
        count, error = _video_length(path)
        if error:
            return [FrameRef(f"{path}#0", input_index, error=error)]
    elif suffix not in IMAGE_SUFFIXES and is_dicom(path):
        try:
            count = count_dicom_frames(path)
        except FrameReadError as read_error:
            return [FrameRef(str(path), input_index, error=str(read_error))]
        if count == 1:
            return [FrameRef(str(path), input_index)]
    else:
        return [FrameRef(str(path), input_index)]
    return [FrameRef(f"{path}#{k}", input_index) for k in _strided(list(range(count)), spec)]


def _readable(path: Path) -> bool:
    return suffix_of(path) in IMAGE_SUFFIXES | VIDEO_SUFFIXES or is_dicom(path)


def _folder_files(root: Path, spec: FrameInput) -> list[Path]:
    """The frame files under ``root`` that ``spec`` selects, in natural path order (see the module docstring)."""
    visited: set[str] = set()
    chosen: dict[str, tuple[list, Path]] = {}  # resolved path -> (sort key, the path it is indexed under)
    dangling: list[str] = []
    unsupported: list[str] = []
    candidates = []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:  # a symlink loop or a second link to a folder already read
            subfolders[:] = []
            continue
        visited.add(real)
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if _selected(relative, spec):
                candidates.append((natural_key(relative), path))
    for key, path in sorted(candidates, key=lambda item: item[0]):
        if not path.exists():
            dangling.append(str(path))
        elif not _readable(path):
            unsupported.append(path.name)
        else:  # one file reached by several paths is indexed once, under a path without symlinks if there is one
            real = os.path.realpath(path)
            if real not in chosen or (chosen[real][1].absolute() != Path(real) and path.absolute() == Path(real)):
                chosen[real] = (key, path)
    if dangling:
        log.warning(
            "%s: skipped %d dangling symlinks (their targets do not exist): %s",
            root,
            len(dangling),
            ", ".join(dangling[:LISTED]),
        )
    if unsupported:
        log.warning(
            "%s: skipped %d files that no reader supports (images, videos, DICOM): %s",
            root,
            len(unsupported),
            ", ".join(unsupported[:LISTED]),
        )
    return [path for _, path in sorted(chosen.values(), key=lambda item: item[0])]


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


def check_inputs(inputs: Sequence[FrameInput]) -> None:
    """Raise ``FileNotFoundError`` naming the first input whose path does not exist (cheap: nothing is read)."""
    for i, spec in enumerate(inputs):
        if not Path(spec.path).exists():
            raise FileNotFoundError(
                f"annotate input {spec.path} does not exist; fix data.init_args.inputs[{i}].path "
                "(make data writes the phantom default)"
            )


def index_inputs(inputs: list[FrameInput]) -> tuple[FrameTable, list[Layout | None]]:
    """Every frame the inputs name, in input order then natural path order, each source once.

    Returns the frames and, per input, its layout reader (``None`` for folders and files).
    """
    check_inputs(inputs)
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
        if root.is_dir():
            for path in _folder_files(root, spec):
                refs += _file_refs(path, i, spec)
        else:
            refs += _file_refs(root, i, spec)
    return FrameTable.from_refs(_unique(refs)), layouts


def _unique(refs: list[FrameRef]) -> Iterator[FrameRef]:
    """``refs`` without repeats of a frame, judged by the resolved file path (a symlink and its target are one file)."""
    real: dict[str, str] = {}
    seen: set[tuple[str, int | None]] = set()
    for ref in refs:
        path, frame = split_source(ref.source)
        key = (real.setdefault(str(path), os.path.realpath(path)), frame)
        if key not in seen:
            seen.add(key)
            yield ref


class FrameDecoder:
    """Decodes :class:`FrameRef` s; keeps one video open and reads it forward.

    Not thread-safe; each DataLoader worker gets its own copy (the open video
    is never pickled).
    """

    def __init__(self, layouts: list[Layout | None]) -> None:
        self.layouts = layouts
        self._video: tuple[str, object, int] | None = None  # (path, capture, index of the next frame)
        self._dicom: tuple[str, np.ndarray] | None = None  # (path, its decoded frames): a cine loop decodes once

    def __getstate__(self) -> dict:
        return {"layouts": self.layouts, "_video": None, "_dicom": None}

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
        if suffix_of(path) in IMAGE_SUFFIXES:
            return read_image(path)
        return self._dicom_frame(path, frame or 0)

    def _dicom_frame(self, path: Path, frame: int) -> np.ndarray:
        if self._dicom is None or self._dicom[0] != str(path):
            self._dicom = None
            self._dicom = (str(path), read_dicom_frames(path))
        frames = self._dicom[1]
        if not 0 <= frame < len(frames):
            raise FrameReadError(path, f"frame {frame} out of range (0..{len(frames) - 1})", "index the inputs again")
        return frames[frame]

    def _video_frame(self, path: Path, frame: int) -> np.ndarray:
        import cv2

        if self._video is None or self._video[0] != str(path) or self._video[2] > frame:
            self.close()
            capture = cv2.VideoCapture(str(path))
            if not capture.isOpened():
                raise FrameReadError(
                    path, "OpenCV cannot open this video", "convert it to mp4 (H.264) or extract its frames as PNG"
                )
            self._video = (str(path), capture, 0)
        name, capture, position = self._video
        while position < frame:
            if not capture.grab():
                self.close()
                raise FrameReadError(
                    path,
                    f"frame {frame} is past the end of the video ({position} frames decode)",
                    "the container's frame count is wrong or the file is truncated",
                )
            position += 1
        ok, image = capture.read()
        self._video = (name, capture, position + 1)
        if not ok:
            self.close()
            raise FrameReadError(
                path, f"frame {frame} does not decode", "the file is truncated or corrupt: re-export it"
            )
        return to_uint8_gray(image[..., ::-1] if image.ndim == 3 else image, f"{path}#{frame}")

    def close(self) -> None:
        if self._video is not None:
            self._video[1].release()
            self._video = None
