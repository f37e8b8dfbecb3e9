import cv2
import numpy as np
import pytest
from PIL import Image

from anaus_pl.data import io


def test_png_modes_all_become_uint8_gray(tmp_path, rng):
    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    Image.fromarray(gray).save(tmp_path / "l.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([rgb, np.full_like(gray, 7)])).save(tmp_path / "rgba.png")
    Image.fromarray(gray).convert("P").save(tmp_path / "p.png")
    for name in ("l.png", "rgb.png", "rgba.png"):
        out = io.read_image(tmp_path / name)
        assert out.dtype == np.uint8 and out.shape == (5, 7)
        np.testing.assert_array_equal(out, gray)
    palette = io.read_image(tmp_path / "p.png")
    assert palette.shape == (5, 7) and np.abs(palette.astype(int) - gray).max() <= 8


def test_16bit_png_scaled_by_own_maximum(tmp_path):
    values = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "w.png"), values)
    out = io.read_image(tmp_path / "w.png")
    np.testing.assert_array_equal(out, [[0, 64], [128, 255]])


def test_label_map_keeps_raw_values(tmp_path):
    labels = np.array([[0, 1, 2], [3, 0, 1]], dtype=np.uint8)
    Image.fromarray(labels).save(tmp_path / "m.png")
    np.testing.assert_array_equal(io.read_label_map(tmp_path / "m.png"), labels)
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 3] = labels * 85
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(io.read_label_map(tmp_path / "a.png"), labels * 85)
    opaque_empty = np.zeros((2, 3, 4), np.uint8)
    opaque_empty[..., 3] = 255  # an all-black RGBA mask (a BUSI normal) is empty, not all lesion
    Image.fromarray(opaque_empty).save(tmp_path / "empty.png")
    assert not io.read_label_map(tmp_path / "empty.png").any()


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "broken (1).png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(io.FrameReadError, match=r"broken \(1\)\.png"):
        io.read_frame(bad)
    with pytest.raises(io.FrameReadError, match="not found"):
        io.read_frame(tmp_path / "nope.png")
    with pytest.raises(io.FrameReadError, match="unknown file type"):
        io.read_frame(tmp_path / "notes.txt")


def test_video_frames_with_stride_and_source_syntax(tmp_path):
    path = tmp_path / "clip with space.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for k in range(6):
        writer.write(np.full((24, 32, 3), 40 * k, np.uint8))
    writer.release()
    frames = list(io.read_video_frames(path, stride=2))
    assert [i for i, _ in frames] == [0, 2, 4]
    assert all(f.shape == (24, 32) and f.dtype == np.uint8 for _, f in frames)
    assert abs(int(io.read_frame(f"{path}#3").mean()) - 120) <= 3
    with pytest.raises(io.FrameReadError, match="past the end"):
        io.read_frame(f"{path}#60")


def test_unreadable_video_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.mp4"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(io.FrameReadError, match="bad.mp4"):
        list(io.read_video_frames(path))


def test_mat_array_and_nifti_sequence(tmp_path):
    import nibabel
    import scipy.io

    scipy.io.savemat(tmp_path / "m.mat", {"gt": np.eye(3, dtype=np.uint8)})
    np.testing.assert_array_equal(io.read_label_map(tmp_path / "m.mat"), np.eye(3))
    frames = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)  # (T, H, W)
    nibabel.save(nibabel.Nifti1Image(np.transpose(frames, (2, 1, 0)), np.eye(4)), tmp_path / "seq.nii.gz")
    np.testing.assert_array_equal(io.read_volume(tmp_path / "seq.nii.gz"), frames)


def test_split_source():
    assert io.split_source("a/b.mp4#12") == (io.Path("a/b.mp4"), 12)
    assert io.split_source("a/b.png") == (io.Path("a/b.png"), None)
