"""Image + mask decoding shared by every segmentation reader.

A segmentation :class:`SampleRef` carries in ``files``:

- ``masks``: mask sources (``path`` or ``path#frame`` for ``.mat``/NIfTI/MetaImage
  stacks); several are merged (BUSI ``_mask_1``, ``_mask_2``);
- either ``value`` (binary masks: 0/1, 0/255, JPEG-noisy 0/255 or 1-bit are
  binarised and written as this anatomy value) or ``values`` (multi-class
  masks: raw value -> anatomy value, every other raw value is an error).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np

from anaus_pl.data.io import (
    VOLUME_SUFFIXES,
    FrameReadError,
    as_label_map,
    read_frame,
    read_label_map,
    read_mat_array,
    read_volume,
    split_source,
    suffix_of,
)
from anaus_pl.data.layouts._tree import by_stem, image_files, stem_of
from anaus_pl.data.layouts.base import Layout, Sample, SampleRef, Task, binarize_mask


def read_mask_raw(source: str) -> np.ndarray:
    """Raw integer values of one mask source as ``uint8 (H, W)`` (never rescaled)."""
    path, frame = split_source(source)
    suffix = suffix_of(path)
    if suffix in VOLUME_SUFFIXES:
        stack = read_volume(path)
    elif suffix == ".mat":
        stack = read_mat_array(path)
        stack = stack[None] if stack.ndim == 2 else stack
    else:
        if frame:
            raise FrameReadError(path, f"a still mask has no frame {frame}", "drop the #frame suffix")
        return read_label_map(path)
    index = frame or 0
    if not 0 <= index < len(stack):
        raise FrameReadError(
            path,
            f"mask frame {index} out of range (0..{len(stack) - 1})",
            "the mask holds fewer frames than its image sequence: re-export it",
        )
    return as_label_map(stack[index], source)


def merge_masks(ref: SampleRef, raws: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """One anatomy label map from the raw masks of ``ref`` (see the module docstring)."""
    values: Mapping[int, int] | None = ref.files.get("values")
    mask = np.zeros(shape, np.uint8)
    for source, raw in zip(ref.files["masks"], raws):
        if raw.shape != shape:
            raise FrameReadError(
                split_source(source)[0],
                f"mask is {raw.shape[1]}x{raw.shape[0]} (WxH) but its image {ref.source} is {shape[1]}x{shape[0]}",
                "masks must have their image's size: re-export the mask or remove the pair",
            )
        if values is None:
            mask[binarize_mask(raw) > 0] = ref.files.get("value", 1)
            continue
        unknown = sorted(set(np.unique(raw).tolist()) - set(values))
        if unknown:
            raise FrameReadError(
                split_source(source)[0],
                f"mask holds values {unknown}, expected only {sorted(values)}",
                "check that the file belongs to this layout (folder/datalist: name every mask value in anatomy)",
            )
        table = np.zeros(256, np.uint8)
        for raw_value, anatomy_value in values.items():
            table[raw_value] = anatomy_value
        mapped = table[raw]
        mask = np.where(mapped > 0, mapped, mask)
    return mask


class PairedLayout(Layout):
    """A layout of image + mask pairs; subclasses implement :meth:`index` only."""

    task: ClassVar[Task] = "segmentation"
    resize_image_to_mask: ClassVar[bool] = False  # True where masks live on a fixed grid (HMC-QU 224x224)

    def load(self, ref: SampleRef) -> Sample:
        image = read_frame(ref.source)
        raws = [read_mask_raw(source) for source in ref.files["masks"]]
        if self.resize_image_to_mask and raws and raws[0].shape != image.shape:
            import cv2

            image = cv2.resize(image, raws[0].shape[::-1], interpolation=cv2.INTER_AREA)
        mask = merge_masks(ref, raws, image.shape)
        return Sample(image=image, source=ref.source, mask=mask, label=ref.label, patient=ref.patient)


def pair_refs(
    image_dir: Path,
    mask_dir: Path,
    *,
    value: int = 1,
    values: Mapping[int, int] | None = None,
    label_of: Callable[[Path], int | None] = lambda path: None,
    patient_of: Callable[[Path], str | None] = lambda path: None,
    images: list[Path] | None = None,
) -> list[SampleRef]:
    """Refs for the images of ``image_dir``, each paired with the mask of the same stem in ``mask_dir``.

    A missing mask is kept as the path it should have, so that loading the item
    fails naming that file instead of the item silently vanishing.
    """
    masks = by_stem(image_files(mask_dir)) if mask_dir.is_dir() else {}
    encoding = {"values": dict(values)} if values is not None else {"value": value}
    return [
        SampleRef(
            source=str(image),
            label=label_of(image),
            patient=patient_of(image),
            files={"masks": (str(masks.get(stem_of(image).lower(), mask_dir / image.name)),), **encoding},
        )
        for image in (image_files(image_dir) if images is None else images)
    ]
