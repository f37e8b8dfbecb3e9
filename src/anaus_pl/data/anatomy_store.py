"""The HDF5 anatomy store (schema 1): letterboxed frames with their LP-SAM label maps.

Layout of one file (see docs/INTERFACES.md): the datasets of :data:`COLUMNS`
(``images``, ``masks``, ``valid_hw``, ``scores``, ``source``, ...), one row per
frame, and the attributes schema, version, classes (JSON), size, lpsam_sha256, config, ...

A finished store may also hold ``skipped`` and ``dropped_empty`` (utf-8
sources of frames that failed to decode / held no anatomy) with their counts
in the attributes ``frames_skipped`` and ``frames_dropped_empty``.

:class:`AnatomyStoreWriter` appends batches to a ``.partial`` file (the
annotate stage writes one per DDP rank and run) and renames it when
complete; :func:`merge_shards` joins such shards into one store. :class:`AnatomyStore` reads it lazily (one handle per
DataLoader worker, never pickled).

Crash safety: partial files are written in HDF5 SWMR mode (the file stays
readable, with ``swmr=True``, if the writer is killed at any moment) and
every append ends by recording ``committed_frames`` and flushing; readers
and resumed writers use only the committed rows, so a batch torn by a kill
is redone, never half-kept. A killed SWMR file cannot be reopened for
writing without ``h5clear``, so the annotate stage never appends to an old
shard: each run writes fresh shards and merges all of them.

Faults: one run at a time holds a store (:class:`StoreLock`); a shard, an
append or a merge that would not fit on the disk or under the file-size limit
stops with a :class:`StoreError` naming the space it needs before HDF5 writes
anything (the committed frames stay, a rerun resumes); a shard that cannot be
opened is named with what to do about it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import resource
import shutil
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from anaus_pl import __version__

SCHEMA = 1
PARTIAL_SUFFIX = ".partial"
RESERVE_BYTES = 64 << 20  # kept free beyond a batch's size, so HDF5's own metadata writes never meet a full disk
_STRING = h5py.string_dtype(encoding="utf-8")
_GZIP = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
_ROWS_PER_CHUNK = 1024


@dataclass(frozen=True)
class Column:
    """One dataset of a store: its dtype, the shape of one row and the counter of its committed rows.

    ``row`` holds ints and the symbols ``"S"`` (the frame size) and ``"C"`` (the number of classes).
    Frame columns are stored one gzip chunk per frame (merged chunk by chunk, never decoded); others in
    chunks of up to 1024 rows. ``shard_only`` columns are kept while annotating, not in the finished store.
    """

    dtype: Any
    row: tuple[int | str, ...]
    committed: str
    frame: bool = False
    shard_only: bool = False

    def row_shape(self, size: int, num_classes: int) -> tuple[int, ...]:
        return tuple(size if d == "S" else num_classes if d == "C" else int(d) for d in self.row)

    def create(
        self,
        group: h5py.Group,
        name: str,
        size: int,
        num_classes: int,
        data: Any = None,
        rows: int = 0,
        growable: bool = False,
    ) -> h5py.Dataset:
        """Dataset ``name`` holding ``data`` (or ``rows`` zero rows); ``growable`` ones can be resized along rows."""
        shape = self.row_shape(size, num_classes)
        rows = len(data) if data is not None else rows
        chunk_rows = 1 if self.frame else (_ROWS_PER_CHUNK if growable else max(1, min(rows, _ROWS_PER_CHUNK)))
        options = {
            "chunks": (chunk_rows, *(max(1, d) for d in shape)) if growable or rows else None,  # no chunk of nothing
            "maxshape": (None, *shape) if growable else None,
            **(_GZIP if self.frame else {}),
        }
        if data is None:
            return group.create_dataset(name, (rows, *shape), self.dtype, **options)
        return group.create_dataset(name, data=data, dtype=self.dtype, **options)


# The store's datasets, in file order (schema 1).
COLUMNS: dict[str, Column] = {
    "images": Column(np.uint8, ("S", "S"), "committed_frames", frame=True),  # letterboxed frame
    "masks": Column(np.uint8, ("S", "S"), "committed_frames", frame=True),  # label map (0 background, 1..C)
    "valid_hw": Column(np.int32, (2,), "committed_frames"),  # unpadded (h, w) inside the S x S square
    "scores": Column(np.float32, ("C",), "committed_frames"),  # per-class confidence
    "class_pixels": Column(np.int64, ("C",), "committed_frames", shard_only=True),  # pixels of each class
    "source": Column(_STRING, (), "committed_frames"),  # ``path`` or ``path#frame``
    "skipped": Column(_STRING, (), "committed_skipped"),  # sources that failed to decode
    "dropped_empty": Column(_STRING, (), "committed_dropped"),  # sources that held no anatomy
}


class StoreError(ValueError):
    """A store file is missing, of another schema, inconsistent, locked, or cannot be written."""


def open_error(path: Path, error: OSError, writing: bool = False) -> StoreError:
    """A :class:`StoreError` saying why HDF5 could not open ``path`` and what to do.

    ``h5clear`` is advised only when HDF5 itself reports a file left open by a killed writer.
    """
    text = " ".join(str(error).split())
    if path.is_file() and path.stat().st_size == 0:
        return StoreError(
            f"{path}: zero-byte file (its writer died before writing anything); delete it and rerun annotate"
        )
    if "h5clear" in text or "consistency flags" in text:
        return StoreError(
            f"{path}: HDF5 reports this file was not closed by its writer ({text}); if no run is writing it, "
            f"run `h5clear -s {path}`, or delete it and rerun annotate"
        )
    code = error.errno or next(
        (c for c in (errno.EACCES, errno.EROFS, errno.ENOSPC, errno.ENOENT, errno.ENOTDIR) if f"errno = {c}," in text),
        None,
    )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError(
            f"{path}: permission denied or read-only file system ({os.strerror(code)}); make "
            f"{path.parent} writable or set store.path to a writable folder"
        )
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StoreError(
            f"{path}: disk full or file size limit reached ({text}); free space and rerun the same command: "
            "committed frames are kept and the run resumes"
        )
    if writing:
        return StoreError(f"{path}: cannot be written ({text}); set store.path to a writable folder")
    return StoreError(
        f"{path}: HDF5 cannot read this file ({text}); it is damaged: move it aside or delete it and "
        "rerun annotate (its frames are annotated again)"
    )


def check_writable(path: str | Path) -> None:
    """Fail unless the folder of ``path`` can be created and written (probed with a file created and removed)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise open_error(path, error, writing=True) from error


def check_space(path: Path, needed: int, what: str = "the next batch") -> None:
    """Raise :class:`StoreError` unless ``path`` can grow by ``needed`` bytes plus :data:`RESERVE_BYTES`.

    Both limits a write can meet are checked before HDF5 writes anything (HDF5
    can crash the process when a write fails part-way): the free space of the
    file system and the file-size limit (``ulimit -f``, which ends writes
    with ``EFBIG``).
    """
    wanted = needed + RESERVE_BYTES
    resume = "rerun the same command: committed frames are kept and the run resumes"
    free = shutil.disk_usage(path.parent).free
    if free < wanted:
        raise StoreError(
            f"{path}: disk full: {what} needs about {wanted / 2**20:.0f} MiB, {free / 2**20:.0f} MiB are free on "
            f"{path.parent}; free space (or set store.path elsewhere) and {resume}"
        )
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    room = limit - (path.stat().st_size if path.exists() else 0)
    if limit != resource.RLIM_INFINITY and room < wanted:
        raise StoreError(
            f"{path}: file size limit reached: {what} needs about {wanted / 2**20:.0f} MiB, the limit (ulimit -f, "
            f"{limit / 2**20:.0f} MiB) lets this file grow by {max(room, 0) / 2**20:.0f} MiB; raise it "
            f"(ulimit -f unlimited) and {resume}"
        )


class StoreLock:
    """An exclusive lock on ``<store>.lock`` for one run; a second run fails at once naming the holder.

    The lock is a ``flock`` on an open file: the operating system releases it
    when the holder exits, even when it is killed, so a stale lock never blocks a rerun.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).with_name(Path(path).name + ".lock")
        self._handle: Any = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            handle.close()
            raise StoreError(
                f"{self.path.with_suffix('')}: another annotate run is writing this store ({holder}); wait for "
                "it to finish, stop it, or set store.path to another file"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the flock
            self._handle = None


def partial_path(path: str | Path) -> Path:
    """Where the unfinished store for ``path`` is written."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def shard_path(path: str | Path, rank: int, attempt: int) -> Path:
    """The partial file rank ``rank`` writes during run ``attempt`` of the store ``path``."""
    path = Path(path)
    return path.with_name(f"{path.name}.a{int(attempt)}.rank{int(rank)}{PARTIAL_SUFFIX}")


def _shards(path: Path) -> list[tuple[int, int, Path]]:
    pattern = re.compile(re.escape(path.name) + r"\.a(\d+)\.rank(\d+)" + re.escape(PARTIAL_SUFFIX) + "$")
    found = [
        (int(m.group(1)), int(m.group(2)), p)
        for p in path.parent.glob(path.name + ".a*" + PARTIAL_SUFFIX)
        if (m := pattern.match(p.name))
    ]
    return sorted(found)


def shard_paths(path: str | Path) -> list[Path]:
    """Every shard of ``path`` on disk, by run attempt then rank."""
    return [p for _, _, p in _shards(Path(path))]


def next_attempt(path: str | Path) -> int:
    """The attempt number a new run on ``path`` writes its shards under."""
    shards = _shards(Path(path))
    return shards[-1][0] + 1 if shards else 0


def _attr_value(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, np.number, np.ndarray)) else json.dumps(value)


def _decode(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


_COMMITTED = {"source": "committed_frames", "skipped": "committed_skipped", "dropped_empty": "committed_dropped"}


def _committed(handle: h5py.File, name: str) -> list[str]:
    """The committed entries of string dataset ``name`` (``source``, ``skipped`` or ``dropped_empty``)."""
    return _decode(handle[name][: int(handle.attrs[_COMMITTED[name]])])


class AnatomyStoreWriter:
    """Appends frames to a partial file; :meth:`finalize` renames it to ``path``.

    ``partial`` names the file to write (default ``<path>.partial``; the
    annotate stage gives each rank of each run a fresh :func:`shard_path`).
    Opening an existing, cleanly closed partial file resumes it: :attr:`written_sources`
    reads every source already stored and :attr:`dropped_sources` every source
    already judged empty, so callers can skip both (read from the file on
    request; the writer holds nothing per frame in memory). Besides the frames, a
    writer keeps running counters (per-class frame and pixel counts, sources
    skipped or dropped) that survive a resume because they are committed in
    the same flush as the frames they count.
    """

    def __init__(
        self,
        path: str | Path,
        classes: Sequence[str],
        size: int,
        attrs: Mapping[str, Any] | None = None,
        partial: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.partial = Path(partial) if partial is not None else partial_path(self.path)
        self.classes = list(classes)
        self.size = int(size)
        resuming = self.partial.exists()
        try:
            self.partial.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise open_error(self.partial, error, writing=True) from error
        check_space(self.partial, 0, "creating the shard")
        try:
            self._file = h5py.File(self.partial, "a", libver="v110")
        except OSError as error:
            raise open_error(self.partial, error, writing=True) from error
        if resuming and "images" in self._file:
            self._check_compatible()
            if "class_pixels" not in self._file:  # a partial file of an older version: count its committed rows once
                c = len(self.classes)
                pixels = frame_class_pixels(self._file["masks"][: len(self)], c).reshape(-1, c)
                COLUMNS["class_pixels"].create(self._file, "class_pixels", self.size, c, data=pixels, growable=True)
            self._truncate_to_committed()
        else:
            self._create(attrs or {})
        self._file.swmr_mode = True

    @property
    def written_sources(self) -> set[str]:
        """Sources of the committed frames."""
        return set(_committed(self._file, "source"))

    @property
    def dropped_sources(self) -> set[str]:
        """Sources committed as dropped for having no anatomy."""
        return set(_committed(self._file, "dropped_empty"))

    def _create(self, attrs: Mapping[str, Any]) -> None:
        s, c = self.size, len(self.classes)
        for name, column in COLUMNS.items():
            column.create(self._file, name, s, c, growable=True)
        self._file.attrs.update(
            {"schema": SCHEMA, "version": __version__, "classes": json.dumps(self.classes), "size": s}
        )
        self._file.attrs.update(_zero_counters(c))
        for key, value in attrs.items():
            self._file.attrs[key] = _attr_value(value)

    def _check_compatible(self) -> None:
        attrs = self._file.attrs
        if (
            int(attrs.get("schema", -1)) != SCHEMA
            or int(attrs["size"]) != self.size
            or json.loads(attrs["classes"]) != self.classes
        ):
            raise StoreError(
                f"{self.partial}: an unfinished store of another size, class list or schema exists; "
                "delete it or write to another path"
            )

    def _truncate_to_committed(self) -> None:
        """Drop rows a killed writer appended after its last commit."""
        attrs = self._file.attrs
        for name, column in COLUMNS.items():
            if self._file[name].shape[0] != int(attrs[column.committed]):
                self._file[name].resize(int(attrs[column.committed]), axis=0)

    def __len__(self) -> int:
        return int(self._file.attrs["committed_frames"])

    @property
    def counters(self) -> dict[str, Any]:
        """The committed counters: frames, skipped, dropped, per-class frames and pixels, valid pixels."""
        return {key: self._file.attrs[key] for key in _zero_counters(len(self.classes))}

    def append(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        valid_hw: np.ndarray,
        scores: np.ndarray,
        sources: Sequence[str],
        dropped: Sequence[str] = (),
        skipped: Sequence[str] = (),
    ) -> None:
        """Append a batch, note sources ``dropped`` as empty or ``skipped`` as unreadable, and commit.

        The commit (counters, then a flush) comes last: a kill before it loses
        the batch, never leaves it half-written.
        """
        n = len(sources)
        if not (len(images) == len(masks) == len(valid_hw) == len(scores) == n):
            raise ValueError("images, masks, valid_hw, scores and sources must have the same length")
        if n == 0 and not dropped and not skipped:
            return
        attrs = self._file.attrs
        start = len(self)
        per_frame = frame_class_pixels(np.asarray(masks), len(self.classes))
        strings = sum(len(s.encode()) + 64 for s in [*sources, *dropped, *skipped])
        check_space(self.partial, np.asarray(images).nbytes + np.asarray(masks).nbytes + per_frame.nbytes + strings)
        try:
            if n:
                for name, data in (
                    ("images", images),
                    ("masks", masks),
                    ("valid_hw", valid_hw),
                    ("scores", scores),
                    ("class_pixels", per_frame),
                    ("source", list(sources)),
                ):
                    dataset = self._file[name]
                    dataset.resize(start + n, axis=0)
                    dataset[start:] = data
            for name, key, values in (
                ("dropped_empty", "committed_dropped", dropped),
                ("skipped", "committed_skipped", skipped),
            ):
                if values:
                    dataset, begin = self._file[name], int(attrs[key])
                    dataset.resize(begin + len(values), axis=0)
                    dataset[begin:] = list(values)
        except OSError as error:
            raise open_error(self.partial, error, writing=True) from error
        hw = np.asarray(valid_hw, np.int64).reshape(-1, 2)
        attrs["class_frames"] = attrs["class_frames"] + (per_frame > 0).sum(0)
        attrs["class_pixels"] = attrs["class_pixels"] + per_frame.sum(0)
        attrs["valid_pixels"] = int(attrs["valid_pixels"]) + int((hw[:, 0] * hw[:, 1]).sum())
        attrs["committed_dropped"] = int(attrs["committed_dropped"]) + len(dropped)
        attrs["committed_skipped"] = int(attrs["committed_skipped"]) + len(skipped)
        attrs["committed_frames"] = start + n
        self._file.flush()

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def finalize(self) -> Path:
        """Close and atomically rename the partial file to the final path."""
        self.close()
        os.replace(self.partial, self.path)
        return self.path


def _zero_counters(num_classes: int) -> dict[str, Any]:
    """Initial values of a shard's committed counters."""
    return {
        "committed_frames": 0,
        "committed_skipped": 0,
        "committed_dropped": 0,
        "valid_pixels": 0,
        "class_frames": np.zeros(num_classes, np.int64),
        "class_pixels": np.zeros(num_classes, np.int64),
    }


def frame_class_pixels(masks: np.ndarray, num_classes: int) -> np.ndarray:
    """``int64 (N, C)``: the pixel count of each class (1..C) in each of ``masks`` (N, S, S)."""
    if masks.size == 0:
        return np.zeros((0, num_classes), np.int64)
    flat = masks.reshape(len(masks), -1)
    return np.stack([np.bincount(row, minlength=num_classes + 1)[1 : num_classes + 1] for row in flat]).astype(np.int64)


def open_shard(path: Path) -> h5py.File:
    """Open a shard for reading (SWMR); a file HDF5 cannot open is a :class:`StoreError` naming it and the fix."""
    try:
        return h5py.File(path, "r", swmr=True)
    except OSError as error:
        raise open_error(path, error) from error


def recorded_config_hashes(path: str | Path) -> dict[Path, str]:
    """``config_sha256`` recorded in the finished store ``path`` and in each of its shards (files without one left out)."""
    path = Path(path)
    found: dict[Path, str] = {}
    for file in ([path] if path.is_file() else []) + shard_paths(path):
        with open_shard(file) if file != path else h5py.File(file, "r") as handle:
            if "config_sha256" in handle.attrs:
                found[file] = str(handle.attrs["config_sha256"])
    return found


def completed_sources(path: str | Path) -> set[str]:
    """Sources committed (written or dropped as empty) in any shard of ``path``."""
    done: set[str] = set()
    for shard in shard_paths(path):
        with open_shard(shard) as handle:
            if "source" not in handle:
                continue
            done.update(_committed(handle, "source"), _committed(handle, "dropped_empty"))
    return done


def merge_shards(
    path: str | Path,
    shards: Sequence[str | Path],
    order: Sequence[str] = (),
    attrs: Mapping[str, Any] | None = None,
    remove_shards: bool = True,
) -> dict[str, Any]:
    """Join rank shards into the finished store ``path``; return its counters.

    Frames are ordered by their position in ``order`` (the run's input order;
    sources not in it follow, sorted), so the store does not depend on the
    number of ranks or on where a run was interrupted. Frame chunks are copied
    compressed (no decode). The store is built in ``<path>.partial`` and
    renamed when complete; shards are removed only after the rename, so a
    merge killed part-way is simply redone.
    """
    path = Path(path)
    shards = [Path(p) for p in shards]
    if not shards:
        raise StoreError(f"{path}: no shard files to merge")
    position = {source: i for i, source in enumerate(order)}
    handles: list[h5py.File] = []
    try:
        handles += [open_shard(p) for p in shards]
        first = handles[0].attrs
        classes, size = json.loads(first["classes"]), int(first["size"])
        rows: dict[str, tuple[int, int]] = {}
        skipped: set[str] = set()
        dropped: set[str] = set()
        for k, handle in enumerate(handles):
            if json.loads(handle.attrs["classes"]) != classes or int(handle.attrs["size"]) != size:
                raise StoreError(
                    f"{shards[k]}: shard of another class list or size than {shards[0]}; delete the stale shard"
                )
            for i, source in enumerate(_committed(handle, "source")):
                rows.setdefault(source, (k, i))
            skipped.update(_committed(handle, "skipped"))
            dropped.update(_committed(handle, "dropped_empty"))
        skipped -= set(rows) | dropped
        ordered = sorted(rows, key=lambda s: (position.get(s, len(position)), s))
        out_path = partial_path(path)
        check_space(out_path, sum(p.stat().st_size for p in shards), "merging the shards")  # copied compressed
        with h5py.File(out_path, "w") as out:
            n, c = len(ordered), len(classes)
            frames = [name for name, column in COLUMNS.items() if column.frame]
            for name in frames:
                COLUMNS[name].create(out, name, size, c, rows=n)
            valid_hw = np.zeros((n, 2), np.int32)
            scores = np.zeros((n, c), np.float32)
            pixels = np.zeros(
                (n, c), np.int64
            )  # the statistics count each merged row once, however many shards hold it
            for j, source in enumerate(ordered):
                k, i = rows[source]
                for name in frames:
                    mask, chunk = handles[k][name].id.read_direct_chunk((i, 0, 0))
                    out[name].id.write_direct_chunk((j, 0, 0), chunk, mask)
                valid_hw[j] = handles[k]["valid_hw"][i]
                scores[j] = handles[k]["scores"][i]
                pixels[j] = (
                    handles[k]["class_pixels"][i]
                    if "class_pixels" in handles[k]  # shards of older versions lack it
                    else frame_class_pixels(handles[k]["masks"][i : i + 1], c)[0]
                )
            columns = {
                "valid_hw": valid_hw,
                "scores": scores,
                "source": ordered,
                "skipped": sorted(skipped),
                "dropped_empty": sorted(dropped),
            }
            for name, data in columns.items():
                COLUMNS[name].create(out, name, size, c, data=data)
            for key, value in first.items():
                if key not in _zero_counters(c):
                    out.attrs[key] = value
            for key, value in (attrs or {}).items():
                out.attrs[key] = _attr_value(value)
            counters = {
                "frames_written": n,
                "frames_skipped": len(skipped),
                "frames_dropped_empty": len(dropped),
                "class_frames": (pixels > 0).sum(0),
                "class_pixels": pixels.sum(0),
                "valid_pixels": int((valid_hw.astype(np.int64).prod(axis=1)).sum()),
            }
            out.attrs.update(counters)
    finally:
        for handle in handles:
            handle.close()
    os.replace(out_path, path)
    if remove_shards:
        for shard in shards:
            shard.unlink(missing_ok=True)
    return counters


class AnatomyStore:
    """Random access to a finished store; the HDF5 handle opens lazily per process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            unfinished = [p.name for p in [partial_path(self.path), *shard_paths(self.path)] if p.exists()]
            hint = f" (unfinished {', '.join(unfinished)} exist: rerun annotate to complete it)" if unfinished else ""
            raise StoreError(f"{self.path}: anatomy store not found{hint}; run `anaus-pl annotate` first")
        with h5py.File(self.path, "r") as handle:
            attrs = dict(handle.attrs)
            if int(attrs.get("schema", -1)) != SCHEMA:
                raise StoreError(
                    f"{self.path}: schema {attrs.get('schema')} is not {SCHEMA}; re-annotate with this version"
                )
            self._length = int(handle["images"].shape[0])
        self.classes: list[str] = json.loads(attrs["classes"])
        self.size = int(attrs["size"])
        self.attrs = attrs
        self._handle: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self._length

    @property
    def handle(self) -> h5py.File:
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self._length <= index < self._length:
            raise IndexError(f"index {index} out of range for a store of {self._length} frames")
        handle = self.handle
        return {
            "image": handle["images"][index],
            "mask": handle["masks"][index],
            "valid_hw": tuple(int(v) for v in handle["valid_hw"][index]),
            "scores": handle["scores"][index],
            "source": _decode(np.atleast_1d(handle["source"][index]))[0],
        }

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"] = None
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
