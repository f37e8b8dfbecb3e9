"""POCUS as evaluated by USCL, HiCo, Meta-USCL and ANAUS: ``covid_5_fold/covid_data{1..5}.pkl``.

Each pickle is ``[X_train, y_train, X_test, y_test]`` with ``X`` of shape ``(N, 3, A, B)``
holding 0..255 and ``y`` in {0 covid, 1 pneumonia, 2 regular}. Fold ``k`` is the test part
of pickle ``k``; the items are the union of the five test parts, with sources
``covid_data<k>.pkl#<i>``. Frames are laid out as the USCL loader does
(``X[i].transpose(1, 2, 0)``). The pickles are read by :class:`ArrayUnpickler`, which rebuilds
numpy arrays and plain containers only: a crafted pickle cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from anaus_pl.data.io import FrameReadError, split_source, to_uint8_gray
from anaus_pl.data.layouts._tree import find_dir
from anaus_pl.data.layouts.base import Layout, LayoutError, Sample, SampleRef, register

FOLDS = 5


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, numpy scalars and plain containers; refuses every other global."""

    ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
            *((f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")),
            *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
        }
    )

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: the file holds more than numpy arrays "
                "(a crafted pickle could run code)"
            )
        return super().find_class(module, name)


def read_fold(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(X_test, y_test)`` of one fold pickle."""
    try:
        with path.open("rb") as handle:
            content = ArrayUnpickler(handle).load()
        _, _, images, labels = content
        images, labels = np.asarray(images), np.asarray(labels).astype(int).ravel()
    except Exception as error:  # unpickling raises many types for truncated or foreign files
        raise FrameReadError(
            path, f"not a USCL fold pickle [X_train, y_train, X_test, y_test] ({error})", "re-download covid_5_fold"
        ) from error
    if images.ndim != 4 or len(images) != len(labels):
        raise FrameReadError(
            path,
            f"X_test has shape {images.shape} for {len(labels)} labels, expected (N, C, H, W)",
            "re-download covid_5_fold",
        )
    return images, labels


@register
class POCUSFolds(Layout):
    """The five USCL POCUS folds; ``official_folds()`` returns them."""

    name = "pocus-uscl"
    task = "classification"
    class_names = ("covid", "pneumonia", "regular")

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self._cached: tuple[Path, np.ndarray] | None = None

    def _files(self) -> list[Path]:
        base = find_dir(self.root, "covid_data1.pkl", layout=self.name)
        files = [base / f"covid_data{k}.pkl" for k in range(1, FOLDS + 1)]
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise LayoutError(f"{base}: fold pickles missing: {missing}")
        return files

    def index(self) -> list[SampleRef]:
        refs = []
        for path in self._files():
            try:
                _, labels = read_fold(path)
            except FrameReadError:
                refs.append(SampleRef(source=f"{path}#0"))  # loading it reports the broken pickle
                continue
            refs += [SampleRef(source=f"{path}#{i}", label=int(label)) for i, label in enumerate(labels)]
        return refs

    def load(self, ref: SampleRef) -> Sample:
        path, index = split_source(ref.source)
        if self._cached is None or self._cached[0] != path:  # one pickle at a time: items come in file order
            self._cached = (path, read_fold(path)[0])
        images = self._cached[1]
        if index is None or not 0 <= index < len(images):
            raise FrameReadError(path, f"item {index} out of range (0..{len(images) - 1})", "index the layout again")
        frame = np.clip(images[index].transpose(1, 2, 0), 0, 255).astype(np.uint8)
        return Sample(image=to_uint8_gray(frame, ref.source), source=ref.source, label=ref.label)

    def official_folds(self) -> list[list[str]]:
        folds: dict[str, list[str]] = {}
        for ref in self.index():
            folds.setdefault(str(split_source(ref.source)[0]), []).append(ref.source)
        return list(folds.values())
