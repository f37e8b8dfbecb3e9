"""What every public data set reader provides.

A reader (:class:`Layout`) knows one on-disk layout as it is downloaded. It
indexes the tree cheaply (:meth:`Layout.index`, no pixel decoding) into
:class:`SampleRef` records and decodes one on demand (:meth:`Layout.load`)
into a :class:`Sample`: grayscale ``uint8`` image, optional ``uint8`` label map
whose values index :attr:`Layout.anatomy`, optional class label, optional
patient id and the source string ``path`` or ``path#frame``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

Task = Literal["segmentation", "classification", "frames"]


class LayoutError(ValueError):
    """The tree under a root does not match the layout; the message says what is missing."""


@dataclass(frozen=True)
class SampleRef:
    """One indexed item: enough to find and decode it later, nothing decoded yet."""

    source: str
    label: int | None = None
    patient: str | None = None
    files: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    """One decoded item."""

    image: np.ndarray
    source: str
    mask: np.ndarray | None = None
    label: int | None = None
    patient: str | None = None

    def __post_init__(self) -> None:
        if self.image.dtype != np.uint8 or self.image.ndim != 2:
            raise ValueError(f"{self.source}: image must be uint8 (H, W), got {self.image.dtype} {self.image.shape}")
        if self.mask is not None:
            if self.mask.dtype != np.uint8 or self.mask.shape != self.image.shape:
                raise ValueError(
                    f"{self.source}: mask {self.mask.dtype} {self.mask.shape} does not match image {self.image.shape}; "
                    "masks must be uint8 label maps of the image's size"
                )


class Layout(ABC):
    """Reader of one public data set layout rooted at ``root``."""

    name: ClassVar[str]
    task: ClassVar[Task]
    anatomy: ClassVar[tuple[str, ...]] = ()
    class_names: ClassVar[tuple[str, ...]] = ()
    root_is_file: ClassVar[bool] = False  # True where the root is a list file (``datalist``), not a folder

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root.is_file() if self.root_is_file else self.root.is_dir()):
            kind = "data list file" if self.root_is_file else "data root"
            raise LayoutError(f"{self.root}: {kind} not found for layout {self.name!r}; see data/README.md")

    @abstractmethod
    def index(self) -> list[SampleRef]:
        """Every item of the data set, in a deterministic order."""

    @abstractmethod
    def load(self, ref: SampleRef) -> Sample:
        """Decode one item."""

    def official_folds(self) -> list[list[str]] | None:
        """The data set's own folds as lists of sources, where it ships them."""
        return None


LAYOUTS: dict[str, type[Layout]] = {}


def register(cls: type[Layout]) -> type[Layout]:
    """Class decorator adding a reader to :data:`LAYOUTS` under its ``name``."""
    if cls.name in LAYOUTS:
        raise ValueError(f"layout {cls.name!r} registered twice")
    LAYOUTS[cls.name] = cls
    return cls


def natural_key(text: str) -> list[Any]:
    """Sort key that orders embedded integers numerically (``img2`` < ``img10``)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def binarize_mask(raw: np.ndarray) -> np.ndarray:
    """A binary mask from 0/1, 0/255 or JPEG-noisy 0/255 data, as ``uint8`` 0/1.

    Values 0/1 are kept; anything with larger values is thresholded at 127 so
    that JPEG ringing around 0 and 255 does not leak into the mask.
    """
    if raw.size == 0 or raw.max() <= 1:
        return (raw > 0).astype(np.uint8)
    return (raw > 127).astype(np.uint8)
