"""The HDF5 anatomy store (schema 1): letterboxed frames with their LP-SAM label maps.

Layout of one file (see DESIGN.md section 3)::

    images    uint8   (N, S, S)  chunks (1, S, S), gzip
    masks     uint8   (N, S, S)  chunks (1, S, S), gzip
    valid_hw  int32   (N, 2)     unpadded (h, w) inside the S x S square
    scores    float32 (N, C)     per-class confidence
    source    utf-8   (N,)       ``path`` or ``path#frame``
    attrs: schema, version, classes (JSON), size, lpsam_sha256, config, ...

:class:`AnatomyStoreWriter` appends batches to a ``.partial`` file and
renames it when complete; :class:`AnatomyStore` reads it lazily (one handle
per DataLoader worker, never pickled).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from anaus_pl import __version__

SCHEMA = 1
PARTIAL_SUFFIX = ".partial"
_STRING = h5py.string_dtype(encoding="utf-8")


class StoreError(ValueError):
    """A store file is missing, of another schema, or inconsistent."""


def partial_path(path: str | Path) -> Path:
    """Where the unfinished store for ``path`` is written."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


class AnatomyStoreWriter:
    """Appends frames to ``<path>.partial``; :meth:`finalize` renames it to ``path``.

    Opening an existing partial file resumes it: :attr:`written_sources` holds
    every source already stored so callers can skip them.
    """

    def __init__(self, path: str | Path, classes: Sequence[str], size: int, attrs: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.classes = list(classes)
        self.size = int(size)
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        resuming = self.partial.exists()
        self._file = h5py.File(self.partial, "a")
        if resuming and "images" in self._file:
            self._check_compatible()
        else:
            self._create(attrs or {})
        self.written_sources: set[str] = {s.decode() if isinstance(s, bytes) else s for s in self._file["source"][:]}

    def _create(self, attrs: Mapping[str, Any]) -> None:
        s, c = self.size, len(self.classes)
        common = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
        self._file.create_dataset("images", (0, s, s), np.uint8, maxshape=(None, s, s), chunks=(1, s, s), **common)
        self._file.create_dataset("masks", (0, s, s), np.uint8, maxshape=(None, s, s), chunks=(1, s, s), **common)
        self._file.create_dataset("valid_hw", (0, 2), np.int32, maxshape=(None, 2), chunks=(1024, 2))
        self._file.create_dataset("scores", (0, c), np.float32, maxshape=(None, c), chunks=(1024, c))
        self._file.create_dataset("source", (0,), _STRING, maxshape=(None,), chunks=(1024,))
        self._file.attrs.update({"schema": SCHEMA, "version": __version__, "classes": json.dumps(self.classes), "size": s})
        for key, value in attrs.items():
            self._file.attrs[key] = value if isinstance(value, (str, int, float, np.number)) else json.dumps(value)

    def _check_compatible(self) -> None:
        attrs = self._file.attrs
        if int(attrs.get("schema", -1)) != SCHEMA or int(attrs["size"]) != self.size or json.loads(attrs["classes"]) != self.classes:
            raise StoreError(f"{self.partial}: an unfinished store of another size, class list or schema exists; "
                             "delete it or write to another path")

    def __len__(self) -> int:
        return int(self._file["images"].shape[0])

    def append(self, images: np.ndarray, masks: np.ndarray, valid_hw: np.ndarray, scores: np.ndarray, sources: Sequence[str]) -> None:
        """Append a batch and flush it to disk (a crash after this loses none of it)."""
        n = len(sources)
        if not (len(images) == len(masks) == len(valid_hw) == len(scores) == n):
            raise ValueError("images, masks, valid_hw, scores and sources must have the same length")
        if n == 0:
            return
        start = len(self)
        for name, data in (("images", images), ("masks", masks), ("valid_hw", valid_hw), ("scores", scores)):
            dataset = self._file[name]
            dataset.resize(start + n, axis=0)
            dataset[start:] = data
        self._file["source"].resize(start + n, axis=0)
        self._file["source"][start:] = list(sources)
        self._file.flush()
        self.written_sources.update(sources)

    def set_attrs(self, **attrs: Any) -> None:
        for key, value in attrs.items():
            self._file.attrs[key] = value if isinstance(value, (str, int, float, np.number)) else json.dumps(value)

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def finalize(self) -> Path:
        """Close and atomically rename the partial file to the final path."""
        self.close()
        os.replace(self.partial, self.path)
        return self.path


class AnatomyStore:
    """Random access to a finished store; the HDF5 handle opens lazily per process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            hint = f" (an unfinished {partial_path(self.path).name} exists: rerun annotate to complete it)" if partial_path(self.path).exists() else ""
            raise StoreError(f"{self.path}: anatomy store not found{hint}; run `anaus-pl annotate` first")
        with h5py.File(self.path, "r") as handle:
            attrs = dict(handle.attrs)
            if int(attrs.get("schema", -1)) != SCHEMA:
                raise StoreError(f"{self.path}: schema {attrs.get('schema')} is not {SCHEMA}; re-annotate with this version")
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
        source = handle["source"][index]
        return {
            "image": handle["images"][index],
            "mask": handle["masks"][index],
            "valid_hw": tuple(int(v) for v in handle["valid_hw"][index]),
            "scores": handle["scores"][index],
            "source": source.decode() if isinstance(source, bytes) else source,
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
