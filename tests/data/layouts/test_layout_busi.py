import numpy as np
import pytest
from layout_trees import box, run_check, speckle, truncate, write_image

from anaus_pl.data.layouts import get_layout

H, W = 29, 37  # odd sizes on purpose


@pytest.fixture
def busi_root(tmp_path):
    base = tmp_path / "Dataset_BUSI_with_GT"
    grey = speckle(H, W)
    write_image(base / "benign" / "benign (1).png", np.stack([grey] * 3, -1))  # grey stored as RGB
    write_image(base / "benign" / "benign (1)_mask.png", box(H, W, slice(0, 5), slice(0, 5)))
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[10:12, 10:13] = 255  # second lesion, RGBA mask
    write_image(base / "benign" / "benign (1)_mask_1.png", rgba)
    write_image(base / "benign" / "benign (10).png", grey)
    write_image(base / "benign" / "benign (10)_mask.png", np.stack([box(H, W, slice(3, 4), slice(0, W))] * 3, -1))
    write_image(base / "benign" / "benign (2).png", grey)
    write_image(base / "benign" / "benign (2)_mask.png", box(H, W, slice(1, 3), slice(1, 3)))
    write_image(base / "malignant" / "malignant (1).png", speckle(H, W, 1, np.uint16))  # 16-bit
    write_image(base / "malignant" / "malignant (1)_mask.png", box(H, W, slice(0, H), slice(0, 1), 1))  # 0/1
    write_image(base / "normal" / "normal (1).png", grey)
    write_image(base / "normal" / "normal (1)_mask.png", np.zeros((H, W), np.uint8))
    return tmp_path


def test_index_orders_naturally_and_labels_by_folder(busi_root):
    refs = get_layout("busi", busi_root).index()
    names = [ref.source.rsplit("/", 1)[-1] for ref in refs]
    assert names == ["benign (1).png", "benign (2).png", "benign (10).png", "malignant (1).png", "normal (1).png"]
    assert [ref.label for ref in refs] == [0, 0, 0, 1, 2]
    assert all(ref.patient is None for ref in refs)
    assert [len(ref.files["masks"]) for ref in refs] == [2, 1, 1, 1, 1]


def test_masks_are_merged_binarised_and_empty_for_normals(busi_root):
    layout = get_layout("busi", busi_root)
    samples = [layout.load(ref) for ref in layout.index()]
    assert all(s.image.shape == (H, W) and s.image.dtype == np.uint8 for s in samples)
    assert [int(s.mask.sum()) for s in samples] == [25 + 6, 4, W, H, 0]
    assert set(np.unique(samples[0].mask)) == {0, 1}
    assert samples[3].image.max() > 200  # 16-bit image rescaled, not clipped to black


def test_check_reports_counts(busi_root, capsys):
    code, report = run_check(capsys, "busi", busi_root)
    assert code == 0
    assert report["task"] == "segmentation" and report["n_items"] == 5 and report["n_patients"] is None
    assert report["classes"] == {"benign": 3, "malignant": 1, "normal": 1, "breast_lesion": 4}
    assert report["problems"] == []


def test_check_names_broken_files(busi_root, capsys):
    base = busi_root / "Dataset_BUSI_with_GT"
    write_image(base / "benign" / "benign (3).png", speckle(H, W))  # no mask at all
    truncate(base / "malignant" / "malignant (1).png")
    write_image(base / "normal" / "normal (1)_mask.png", np.zeros((H + 1, W), np.uint8))
    code, report = run_check(capsys, "busi", busi_root)
    assert code == 1
    problems = "\n".join(report["problems"])
    assert len(report["problems"]) == 3
    assert "benign (3)_mask.png: file not found" in problems
    assert "malignant (1).png: not a readable image" in problems
    assert "normal (1)_mask.png: mask is 37x30" in problems
