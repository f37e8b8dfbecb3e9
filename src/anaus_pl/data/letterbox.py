"""Letterboxing: longest side resized to ``size``, image at the top-left, zero padding.

Placing the frame at the top-left makes the unpadded size ``valid_hw`` enough
to undo the transform, which is how the HDF5 anatomy store records geometry.
"""

from __future__ import annotations

import cv2
import numpy as np


def letterbox_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """The ``(h, w)`` a ``height x width`` frame takes inside a ``size`` square."""
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def letterbox(array: np.ndarray, size: int, nearest: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """Resize ``(H, W)`` so its longest side is ``size``; pad to ``size x size``.

    Images use area/linear interpolation, label maps (``nearest=True``) nearest
    neighbour so that no new label values appear. Returns the padded array and
    its valid ``(h, w)``.
    """
    if array.ndim != 2:
        raise ValueError(f"letterbox expects a 2-D array, got shape {array.shape}")
    h, w = letterbox_shape(*array.shape, size)
    if nearest:
        interpolation = cv2.INTER_NEAREST_EXACT
    else:
        interpolation = cv2.INTER_AREA if h < array.shape[0] else cv2.INTER_LINEAR
    resized = cv2.resize(array, (w, h), interpolation=interpolation)
    out = np.zeros((size, size), dtype=array.dtype)
    out[:h, :w] = resized
    return out, (h, w)


def unletterbox(
    array: np.ndarray, valid_hw: tuple[int, int], original_hw: tuple[int, int], nearest: bool = False
) -> np.ndarray:
    """Undo :func:`letterbox`: crop the valid part and resize it to ``original_hw``."""
    h, w = (int(v) for v in valid_hw)
    crop = np.ascontiguousarray(array[:h, :w])
    interpolation = cv2.INTER_NEAREST_EXACT if nearest else cv2.INTER_LINEAR
    return cv2.resize(crop, (int(original_hw[1]), int(original_hw[0])), interpolation=interpolation)
