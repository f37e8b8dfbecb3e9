"""Byte-deterministic file writers for every format the public layouts use.

Formats that stamp the wall-clock time into their files (gzip, MATLAB
headers, xlsx zip members and document properties) get fixed stamps, so the
same seed writes the same bytes.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

FIXED_TIME = datetime(2020, 1, 1)
VIDEO_CODECS = {".avi": "MJPG", ".mp4": "mp4v"}


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _encode(path: Path, image: np.ndarray, params: Sequence[int] = ()) -> None:
    ok, buffer = cv2.imencode(path.suffix.lower() if path.suffix.lower() != ".jpeg" else ".jpg", image, list(params))
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode this image")
    _write_bytes(path, buffer.tobytes())


def write_png(path: Path, image: np.ndarray) -> None:
    """PNG of a ``(H, W)`` grey, ``(H, W, 3)`` BGR or ``(H, W, 4)`` BGRA ``uint8`` array."""
    _encode(path, image)


def write_jpeg(path: Path, image: np.ndarray, quality: int = 90) -> None:
    """JPEG (any of .jpg/.jpeg/.JPG) at the given quality; masks keep their compression noise, as in TN3K/TG3K."""
    _encode(path, image, (cv2.IMWRITE_JPEG_QUALITY, quality))


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    """Grey frames as a colour video: ``.avi`` (Motion-JPEG), ``.mp4`` (MPEG-4 part 2; both even sizes only) or ``.gif``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        return
    height, width = frames[0].shape
    if height % 2 or width % 2:
        raise ValueError(f"{path}: {suffix} codecs crop odd frame sizes; got {height}x{width}, use even sizes")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_CODECS[suffix]), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write {suffix} videos here (codec {VIDEO_CODECS[suffix]})")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()


def write_nifti_gz(path: Path, frames: np.ndarray, spacing: tuple[float, float] = (0.3, 0.3)) -> None:
    """A ``(H, W)`` image or ``(T, H, W)`` sequence as NIfTI-1 stored ``(x, y[, t])``, gzip without a time stamp."""
    import nibabel

    data = frames.T if frames.ndim == 2 else frames.transpose(2, 1, 0)
    image = nibabel.Nifti1Image(np.ascontiguousarray(data), np.diag([*spacing, 1.0, 1.0]))
    image.header.set_zooms((*spacing, 1.0)[: data.ndim])
    _write_bytes(path, gzip.compress(image.to_bytes(), compresslevel=6, mtime=0))


def write_mat(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A MATLAB 5 ``.mat`` file whose header text carries no creation date."""
    from scipy.io import savemat

    buffer = io.BytesIO()
    savemat(buffer, arrays, do_compression=True)
    data = bytearray(buffer.getvalue())
    data[:116] = b"MATLAB 5.0 MAT-file, written by anaus-pl phantom".ljust(116, b" ")
    _write_bytes(path, bytes(data))


def write_xlsx(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A one-sheet workbook with fixed document dates and zip member times."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    workbook.properties.created = FIXED_TIME
    workbook.properties.modified = FIXED_TIME
    workbook.properties.creator = "anaus-pl phantom"
    raw = io.BytesIO()
    workbook.save(raw)
    fixed = io.BytesIO()
    with zipfile.ZipFile(raw) as source, zipfile.ZipFile(fixed, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            content = source.read(member.filename)
            if member.filename == "docProps/core.xml":  # openpyxl stamps "now" at save time
                content = _fix_core_dates(content)
            info = zipfile.ZipInfo(member.filename, date_time=FIXED_TIME.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, content)
    _write_bytes(path, fixed.getvalue())


def _fix_core_dates(xml: bytes) -> bytes:
    import re

    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    return re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(<)", rb"\g<1>" + stamp + rb"\g<2>", xml)


def write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))
