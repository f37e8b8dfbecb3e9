"""The anatomy vocabulary: the ordered class names of a run.

Label maps are ``uint8 (H, W)`` with 0 for background and ``k`` for the k-th
name. Data set readers declare their own names; :class:`AnatomyVocabulary`
maps a reader's label map onto the run's vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

MAX_CLASSES = 255


class AnatomyVocabulary:
    """Ordered, unique anatomy names; label value ``k`` is ``names[k - 1]``."""

    def __init__(self, names: Sequence[str]) -> None:
        names = tuple(names)
        if not names:
            raise ValueError("an anatomy vocabulary needs at least one class name")
        if len(set(names)) != len(names):
            raise ValueError(f"anatomy names must be unique, got {list(names)}")
        if len(names) > MAX_CLASSES:
            raise ValueError(f"at most {MAX_CLASSES} anatomy classes fit a uint8 label map, got {len(names)}")
        bad = [n for n in names if not n or n != n.strip()]
        if bad:
            raise ValueError(f"anatomy names must be non-empty without surrounding spaces: {bad}")
        self.names = names

    @classmethod
    def union(cls, groups: Iterable[Sequence[str]]) -> AnatomyVocabulary:
        """Names of several readers in first-seen order."""
        ordered: dict[str, None] = {}
        for group in groups:
            ordered.update(dict.fromkeys(group))
        return cls(list(ordered))

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnatomyVocabulary) and other.names == self.names

    def __repr__(self) -> str:
        return f"AnatomyVocabulary({list(self.names)})"

    def value_of(self, name: str) -> int:
        """Label value of ``name`` (1-based)."""
        try:
            return self.names.index(name) + 1
        except ValueError:
            raise KeyError(f"anatomy {name!r} is not in the vocabulary {list(self.names)}") from None

    def lookup_table(self, source_names: Sequence[str]) -> np.ndarray:
        """A 256-entry table mapping a reader's label values onto this vocabulary.

        Value ``k`` of the reader (its ``source_names[k - 1]``) maps to this
        vocabulary's value of that name; names missing here map to background.
        """
        table = np.zeros(256, dtype=np.uint8)
        for k, name in enumerate(source_names, start=1):
            table[k] = self.names.index(name) + 1 if name in self.names else 0
        return table

    def remap(self, label_map: np.ndarray, source_names: Sequence[str]) -> np.ndarray:
        """Re-express ``label_map`` (values index ``source_names``) in this vocabulary."""
        if label_map.dtype != np.uint8:
            raise TypeError(f"label maps are uint8, got {label_map.dtype}")
        if label_map.size and label_map.max() > len(source_names):
            raise ValueError(f"label value {label_map.max()} has no name among {list(source_names)}")
        return self.lookup_table(source_names)[label_map]
