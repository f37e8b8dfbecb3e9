"""DICOM as annotate and `datasets check` read it, on files written here with pydicom."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLSLossless, generate_uid

from anaus_pl.data.datamodules.annotate import LetterboxedFrames
from anaus_pl.data.frame_sources import FrameDecoder, FrameInput, index_inputs
from anaus_pl.data.io import FrameReadError, read_frame
from anaus_pl.data.layouts.cli import main as datasets_main

FRAMES = (np.arange(4 * 40 * 48) % 251).astype(np.uint8).reshape(4, 40, 48)


def write_dicom(
    path: Path,
    frames: np.ndarray,
    photometric: str = "MONOCHROME2",
    syntax: str = ExplicitVRLittleEndian,
    encoded: bytes | None = None,
    multi_frame: bool = True,
) -> Path:
    """An ultrasound DICOM file of ``frames`` (``(T, H, W)`` gray or ``(T, H, W, 3)`` colour), 8 bits per sample."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"  # ultrasound multi-frame image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID, dataset.Modality = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
        "US",
    )
    dataset.Rows, dataset.Columns = frames.shape[1:3]
    dataset.SamplesPerPixel = 3 if frames.ndim == 4 else 1
    dataset.PhotometricInterpretation = photometric
    if frames.ndim == 4:
        dataset.PlanarConfiguration = 0
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 8, 8, 7, 0
    if multi_frame:
        dataset.NumberOfFrames = len(frames)
    dataset.PixelData = encoded if encoded is not None else frames.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
    return path


def luma(rgb: np.ndarray) -> np.ndarray:
    return np.rint(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))


def test_single_frame_monochrome1_rgb_and_ybr(tmp_path):
    np.testing.assert_array_equal(
        read_frame(write_dicom(tmp_path / "one.dcm", FRAMES[:1], multi_frame=False)), FRAMES[0]
    )
    inverted = read_frame(write_dicom(tmp_path / "m1.dcm", FRAMES[:1], "MONOCHROME1"))
    np.testing.assert_array_equal(inverted, 255 - FRAMES[0])  # 0 is white in MONOCHROME1
    rgb = np.stack([FRAMES[:1], FRAMES[:1] // 2, 255 - FRAMES[:1]], -1)
    np.testing.assert_array_equal(read_frame(write_dicom(tmp_path / "rgb.dcm", rgb, "RGB")), luma(rgb[0]))
    ybr = convert_color_space(rgb[0], "RGB", "YBR_FULL")[None]
    gray = read_frame(write_dicom(tmp_path / "ybr.dcm", ybr, "YBR_FULL")).astype(int)
    assert np.abs(gray - luma(rgb[0])).max() <= 2  # YBR_FULL -> RGB -> luma, up to rounding


def test_jpeg_compressed_dicom_decodes_through_pydicom(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(FRAMES[0]).save(buffer, format="JPEG", quality=95)
    path = write_dicom(
        tmp_path / "jpeg.dcm", FRAMES[:1], syntax=JPEGBaseline8Bit, encoded=encapsulate([buffer.getvalue()])
    )
    assert np.abs(read_frame(path).astype(int) - FRAMES[0]).mean() < 2


def test_a_missing_decoder_is_named(tmp_path):
    path = write_dicom(
        tmp_path / "jls.dcm", FRAMES[:1], syntax=JPEGLSLossless, encoded=encapsulate([b"\xff\xd8 jpeg-ls"])
    )
    with pytest.raises(
        FrameReadError,
        match=rf"{path}: its transfer syntax {JPEGLSLossless} is compressed and no installed "
        r"package decodes it \(pip install pylibjpeg pylibjpeg-libjpeg",
    ):
        read_frame(path)


def test_cine_dicom_in_a_frame_folder_is_indexed_with_stride_and_cap(tmp_path):
    write_dicom(tmp_path / "study" / "cine.dcm", FRAMES)
    write_dicom(tmp_path / "study" / "IM0002", FRAMES[:1], multi_frame=False)  # a series file without suffix
    (tmp_path / "study" / "notes.txt").write_text("not a frame")
    refs, layouts = index_inputs([FrameInput(str(tmp_path), frame_stride=2, max_frames_per_video=3)])
    names = [source.replace(str(tmp_path / "study") + "/", "") for source in refs.sources()]
    assert names == ["cine.dcm#0", "cine.dcm#2", "IM0002"]
    decoder = FrameDecoder(layouts)
    for ref, expected in zip(refs, (FRAMES[0], FRAMES[2], FRAMES[0])):
        np.testing.assert_array_equal(decoder.decode(ref), expected)
    only_dcm, _ = index_inputs([FrameInput(str(tmp_path), include=["*.dcm"], max_frames_per_video=1)])
    assert only_dcm.sources() == [f"{tmp_path / 'study' / 'cine.dcm'}#0"]
    item = LetterboxedFrames(refs, decoder, 32)[1]
    assert "error" not in item and tuple(item["image"].shape) == (32, 32)


def test_datasets_check_reads_a_folder_of_dicom_series(tmp_path, capsys):
    write_dicom(tmp_path / "patient1" / "series1" / "cine.dcm", FRAMES)
    write_dicom(tmp_path / "patient1" / "series2" / "IM0001", FRAMES[:1], "MONOCHROME1", multi_frame=False)
    assert datasets_main(["check", "--layout", "frames", "--root", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_items"] == 5 and report["task"] == "frames" and report["problems"] == []
    broken = write_dicom(tmp_path / "patient2" / "x.dcm", FRAMES)
    broken.write_bytes(broken.read_bytes()[:600])  # truncated in the pixel data
    assert datasets_main(["check", "--layout", "frames", "--root", str(tmp_path)]) == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert len(problems) == 4 and all(
        problem.startswith(f"{broken}: DICOM pixel data does not decode") for problem in problems
    )
