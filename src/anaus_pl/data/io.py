"""Read any ultrasound frame as grayscale ``uint8 (H, W)``.

Every reader in anaus-pl goes through this module, so every failure names the
file and says what to do about it. Images: PNG/JPEG/BMP/TIFF (8 or 16 bit; L,
RGB, RGBA, palette). Videos: mp4/avi/mov/mkv/gif through OpenCV. Volumes and
sequences: NIfTI (``.nii``/``.nii.gz``, needs nibabel) and MetaImage
(``.mhd``, needs SimpleITK). DICOM (needs pydicom; single- and multi-frame,
MONOCHROME1/2, RGB, YBR, and compressed transfer syntaxes through pydicom's
decoders; files without a ``.dcm`` suffix are recognised by their ``DICM``
marker). MATLAB ``.mat`` arrays.

A *source* string names one frame: ``path`` for a still image or
``path#k`` for frame ``k`` of a video or sequence.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".gif", ".wmv", ".mpg", ".mpeg"})
VOLUME_SUFFIXES = frozenset({".nii", ".nii.gz", ".mhd", ".mha"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})


class FrameReadError(ValueError):
    """A frame could not be read; the message names the file and the fix."""

    def __init__(self, path: str | Path, problem: str, fix: str = "") -> None:
        self.path = str(path)
        message = f"{path}: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


def suffix_of(path: str | Path) -> str:
    """Lower-case suffix, treating ``.nii.gz`` as one suffix."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def to_uint8_gray(array: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """Convert a decoded 2-D or channel-last array to grayscale ``uint8 (H, W)``.

    Colour is averaged with ITU-R 601 luma weights; an alpha channel is dropped.
    8-bit data passes unchanged; wider integers are scaled by the frame's own
    maximum, floats in [0, 1] by 255 and other floats by their maximum.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        if array.shape[-1] == 1:
            array = array[..., 0]
        else:
            luma = array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            array = np.rint(luma).astype(np.uint8) if array.dtype == np.uint8 else luma
    if array.ndim != 2:
        raise FrameReadError(
            path,
            f"expected a 2-D frame, got an array of shape {array.shape}",
            "pass one frame of a video or volume with the path#frame syntax",
        )
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    values = array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise FrameReadError(path, "frame holds NaN or infinite values", "re-export the image")
    low = min(values.min(), 0.0)
    high = values.max() - low
    if np.issubdtype(array.dtype, np.floating) and low >= 0.0 and values.max() <= 1.0:
        high = 1.0
    scale = 255.0 / high if high > 0 else 0.0
    return np.clip(np.rint((values - low) * scale), 0, 255).astype(np.uint8)


def _open_pil(path: Path) -> Image.Image:
    if not path.is_file():
        raise FrameReadError(path, "file not found", "check the data root and the layout name")
    try:
        image = Image.open(path)
        image.load()
    except Image.DecompressionBombError as error:
        raise FrameReadError(
            path,
            f"refused to decode: {error}",
            "a header this large is corrupt or hostile; if the image is genuine, downscale it",
        ) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise FrameReadError(
            path, f"not a readable image ({error})", "the file is corrupt or truncated: re-download it or exclude it"
        ) from error
    return image


def read_image(path: str | Path) -> np.ndarray:
    """Read a still image (any bit depth or colour mode) as ``uint8 (H, W)``."""
    path = Path(path)
    image = _open_pil(path)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return to_uint8_gray(np.array(image), path)
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")
    return to_uint8_gray(np.array(image), path)


def read_label_map(path: str | Path) -> np.ndarray:
    """Read a mask file keeping its raw integer values (never divided by 255).

    Palette PNGs keep their indices; RGB/RGBA masks take the per-pixel channel
    maximum (alpha only when the colour channels are all zero and alpha varies:
    an opaque all-black RGBA mask is empty). Values above
    255 are rejected because a label map is ``uint8``.
    """
    path = Path(path)
    if suffix_of(path) == ".mat":
        return as_label_map(read_mat_array(path), path)
    image = _open_pil(path)
    array = np.array(image)
    if array.ndim == 3:
        colour = array[..., :3].max(axis=-1)
        alpha = array[..., 3] if array.shape[-1] == 4 else None
        if alpha is not None and not colour.any() and alpha.min() != alpha.max():
            colour = alpha  # the label drawn in the alpha channel alone; a constant alpha is mere opacity
        array = colour
    return as_label_map(array, path)


def as_label_map(array: np.ndarray, path: str | Path) -> np.ndarray:
    """Validate a decoded 2-D mask array (integer values 0..255) and return it as ``uint8``."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise FrameReadError(path, f"mask must be 2-D, got shape {array.shape}", "select one frame of a mask sequence")
    if array.dtype == bool:
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise FrameReadError(path, "mask holds non-integer values", "save masks as integer label maps")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise FrameReadError(
            path, f"mask values span {array.min()}..{array.max()}, outside 0..255", "store labels as uint8"
        )
    return array.astype(np.uint8)


def _open_video(path: Path):
    import cv2

    if not path.is_file():
        raise FrameReadError(path, "file not found", "check the data root")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FrameReadError(
            path, "OpenCV cannot open this video", "convert it to mp4 (H.264) or extract its frames as PNG"
        )
    return capture


def count_video_frames(path: str | Path) -> int:
    """Number of decodable frames of a video (decodes it: container counts lie)."""
    return sum(1 for _ in read_video_frames(path))


def read_video_frames(
    path: str | Path, stride: int = 1, max_frames: int | None = None, start: int = 0
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, uint8 (H, W))`` for every ``stride``-th frame from ``start``."""
    import cv2

    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    path = Path(path)
    capture = _open_video(path)
    try:
        index, produced = 0, 0
        if start:
            capture.set(cv2.CAP_PROP_POS_FRAMES, start)
            index = int(capture.get(cv2.CAP_PROP_POS_FRAMES))
        while max_frames is None or produced < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            if (index - start) % stride == 0:
                bgr = frame[..., ::-1] if frame.ndim == 3 else frame
                yield index, to_uint8_gray(bgr, f"{path}#{index}")
                produced += 1
            index += 1
        if index == 0 and start == 0:
            raise FrameReadError(path, "video has no decodable frame", "the file is empty or corrupt")
    finally:
        capture.release()


def read_video_frame(path: str | Path, frame: int) -> np.ndarray:
    """One frame of a video by index."""
    for index, image in read_video_frames(path, start=frame, max_frames=1):
        if index == frame:
            return image
    raise FrameReadError(path, f"frame {frame} is past the end of the video", "check the frame index")


def read_volume(path: str | Path) -> np.ndarray:
    """A NIfTI or MetaImage 2-D image or sequence as ``(T, H, W)`` raw values (not rescaled)."""
    path = Path(path)
    if not path.is_file():
        raise FrameReadError(path, "file not found", "check the data root")
    suffix = suffix_of(path)
    try:
        if suffix in (".nii", ".nii.gz"):
            import nibabel

            array = np.asarray(nibabel.load(str(path)).dataobj)
            # NIfTI stores (x, y[, t]); frames are (t, y, x) -> rows are y.
            array = np.moveaxis(array, (0, 1), (-1, -2)) if array.ndim >= 2 else array
            array = array.reshape(-1, *array.shape[-2:])
        elif suffix in (".mhd", ".mha"):
            import SimpleITK

            array = SimpleITK.GetArrayFromImage(SimpleITK.ReadImage(str(path)))
            array = array.reshape(-1, *array.shape[-2:])
        else:
            raise FrameReadError(path, f"unsupported volume suffix {suffix}", "use .nii, .nii.gz, .mhd or .mha")
    except ImportError as error:
        raise FrameReadError(path, f"reading {suffix} needs {error.name}", "pip install 'anaus-pl[formats]'") from error
    except FrameReadError:
        raise
    except Exception as error:  # the format libraries raise many types for corrupt files
        raise FrameReadError(path, f"not a readable volume ({error})", "the file is corrupt: re-download it") from error
    return array


def read_mat_array(path: str | Path, key: str | None = None) -> np.ndarray:
    """The named (or the only non-private) array of a MATLAB ``.mat`` file (v4-v7.2 via SciPy, v7.3 via h5py)."""
    path = Path(path)
    if not path.is_file():
        raise FrameReadError(path, "file not found", "check the data root")
    try:
        import scipy.io

        content = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        import h5py

        with h5py.File(path, "r") as handle:
            content = {k: np.asarray(handle[k]).T for k in handle.keys() if not k.startswith("#")}
    except Exception as error:
        raise FrameReadError(
            path, f"not a readable .mat file ({error})", "the file is corrupt: re-download it"
        ) from error
    if key is None:
        arrays = [k for k, v in content.items() if isinstance(v, np.ndarray) and v.ndim >= 2]
        if len(arrays) != 1:
            raise FrameReadError(path, f"expected one array, found {sorted(content)}", "name the variable to read")
        key = arrays[0]
    if key not in content:
        raise FrameReadError(path, f"no variable {key!r}; present: {sorted(content)}", "name an existing variable")
    return np.asarray(content[key])


# compressed transfer syntax UID (suffix after 1.2.840.10008.1.2.4.) -> packages that give pydicom a decoder for it
_LIBJPEG, _OPENJPEG = "pylibjpeg pylibjpeg-libjpeg", "pylibjpeg pylibjpeg-openjpeg"
DICOM_DECODERS = {
    f"1.2.840.10008.1.2.4.{suffix}": package
    for suffix, package in {
        "50": f"{_LIBJPEG} (or Pillow)",
        "51": _LIBJPEG,
        "57": _LIBJPEG,
        "70": _LIBJPEG,
        "80": f"{_LIBJPEG} (or pyjpegls)",
        "81": f"{_LIBJPEG} (or pyjpegls)",
        "90": _OPENJPEG,
        "91": _OPENJPEG,
        "201": _OPENJPEG,
        "202": _OPENJPEG,
        "203": _OPENJPEG,
    }.items()
}
DICOM_MARKER_OFFSET = 128  # the 128-byte preamble, then b"DICM"


def is_dicom(path: str | Path) -> bool:
    """A ``.dcm``/``.dicom`` suffix, or a file carrying the DICOM ``DICM`` marker (series often have no suffix)."""
    path = Path(path)
    if suffix_of(path) in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(DICOM_MARKER_OFFSET)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _dicom(path: Path, stop_before_pixels: bool = False):
    if not path.is_file():
        raise FrameReadError(path, "file not found", "check the data root")
    try:
        import pydicom
    except ImportError as error:
        raise FrameReadError(path, "reading DICOM needs pydicom", "pip install 'anaus-pl[formats]'") from error
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except Exception as error:  # pydicom raises several types for truncated or foreign files
        raise FrameReadError(
            path, f"not a readable DICOM file ({error})", "the file is corrupt or not DICOM: re-export it"
        ) from error


def count_dicom_frames(path: str | Path) -> int:
    """Number of frames of a DICOM image, from its header (no pixel is decoded)."""
    path = Path(path)
    dataset = _dicom(path, stop_before_pixels=True)
    if "Rows" not in dataset:
        raise FrameReadError(
            path, "DICOM file holds no image (no Rows)", "a report or structured document is no frame: exclude it"
        )
    return int(dataset.get("NumberOfFrames", 1) or 1)


def read_dicom_frames(path: str | Path) -> np.ndarray:
    """All frames of a DICOM file as ``uint8 (T, H, W)``.

    YBR colour is converted to RGB and then to luma like RGB; MONOCHROME1
    (0 is white) is inverted so that bright tissue is bright, as in MONOCHROME2.
    """
    path = Path(path)
    dataset = _dicom(path)
    meta = getattr(dataset, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    try:
        pixels = dataset.pixel_array  # pydicom converts YBR to RGB
    except Exception as error:
        package = DICOM_DECODERS.get(syntax)
        if package is not None and ("plugin" in str(error).lower() or "decoder" in str(error).lower()):
            raise FrameReadError(
                path,
                f"its transfer syntax {syntax} is compressed and no installed package decodes it",
                f"pip install {package}",
            ) from error
        raise FrameReadError(
            path, f"DICOM pixel data does not decode ({error})", "the file is truncated or corrupt: re-export it"
        ) from error
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    colour = int(dataset.get("SamplesPerPixel", 1)) > 1
    pixels = pixels.reshape(frames, *pixels.shape[-3:] if colour else pixels.shape[-2:])
    if dataset.get("PhotometricInterpretation") == "MONOCHROME1":
        bits = int(dataset.get("BitsStored", 8 * pixels.dtype.itemsize))
        top = (1 << bits) - 1 if not np.issubdtype(pixels.dtype, np.signedinteger) else pixels.max()
        pixels = top - pixels
    return np.stack([to_uint8_gray(frame, f"{path}#{i}") for i, frame in enumerate(pixels)])


def split_source(source: str) -> tuple[Path, int | None]:
    """Split ``path#k`` into ``(path, k)``; a plain path gives ``(path, None)``."""
    head, sep, tail = source.rpartition("#")
    if sep and tail.isdigit() and not Path(source).exists():
        return Path(head), int(tail)
    return Path(source), None


def read_frame(source: str | Path) -> np.ndarray:
    """Read the frame a source string names (still image, video, volume or DICOM frame)."""
    path, frame = split_source(str(source))
    suffix = suffix_of(path)
    if suffix in VIDEO_SUFFIXES:
        return read_video_frame(path, frame or 0)
    if suffix in VOLUME_SUFFIXES:
        frames = read_volume(path)
        return to_uint8_gray(_pick(frames, frame, path), f"{path}#{frame or 0}")
    if suffix in IMAGE_SUFFIXES:
        if frame:
            raise FrameReadError(path, f"a still image has no frame {frame}", "drop the #frame suffix")
        return read_image(path)
    if is_dicom(path):
        return _pick(read_dicom_frames(path), frame, path)
    raise FrameReadError(
        path,
        f"unknown file type {suffix!r}",
        f"supported: {sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES | VOLUME_SUFFIXES | DICOM_SUFFIXES)}",
    )


def _pick(frames: np.ndarray, frame: int | None, path: Path) -> np.ndarray:
    index = frame or 0
    if not 0 <= index < len(frames):
        raise FrameReadError(path, f"frame {index} out of range (0..{len(frames) - 1})", "check the frame index")
    return frames[index]
