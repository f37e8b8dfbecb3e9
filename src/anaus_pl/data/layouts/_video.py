"""Frame items of videos, found from container headers without decoding pixels."""

from __future__ import annotations

from pathlib import Path

from anaus_pl.data.io import FrameReadError, count_video_frames
from anaus_pl.data.layouts.base import SampleRef


def video_header(path: Path) -> tuple[int, float]:
    """``(frame count, fps)`` from the container; the count is decoded only where the header has none (GIF)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return 0, 0.0
        count, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()
    if count <= 0:
        try:
            count = count_video_frames(path)
        except FrameReadError:
            count = 0
    return count, fps


def video_frame_refs(
    path: Path,
    *,
    stride: int | None,
    rate_hz: float,
    max_frames: int | None,
    label: int | None = None,
    patient: str | None = None,
) -> list[SampleRef]:
    """Refs ``path#k`` for every ``stride``-th frame, or at about ``rate_hz`` when ``stride`` is None.

    A video that cannot be opened still yields ``path#0``, so that loading it
    reports the broken file rather than the video silently vanishing.
    """
    count, fps = video_header(path)
    step = stride if stride is not None else max(1, int(fps / rate_hz)) if fps > 0 else 1
    frames = list(range(0, max(count, 1), step))[:max_frames]
    return [SampleRef(source=f"{path}#{k}", label=label, patient=patient) for k in frames]
