"""TN3K, TG3K and DDTI: numbered image/mask pairs, JPEG-noisy or 0/1 masks, TRFE-Net split JSONs."""

import json

import numpy as np
import pytest
from layout_trees import box, run_check, speckle, truncate, write_image

from anaus_pl.data.io import read_label_map
from anaus_pl.data.layouts import LayoutError, get_layout

H, W = 33, 47


def nodule(k: int) -> np.ndarray:
    return box(H, W, slice(8, 8 + 8), slice(4 + k, 4 + k + 16))


@pytest.fixture
def tn3k_root(tmp_path):
    base = tmp_path / "Thyroid Dataset" / "tn3k"
    for subset, count in (("trainval", 12), ("test", 3)):
        for k in range(count):
            write_image(base / f"{subset}-image" / f"{k:04d}.jpg", speckle(H, W, k), quality=90)
            write_image(base / f"{subset}-mask" / f"{k:04d}.jpg", nodule(k), quality=50)
        lines = ["name,label"] + [f"{k:04d}.jpg,{k % 2}" for k in range(count)]
        (base / f"label4{subset}.csv").write_text("\n".join(lines) + "\n")
    for fold in range(5):
        val = [i for i in range(12) if i % 5 == fold]
        (base / f"tn3k-trainval-fold{fold}.json").write_text(
            json.dumps({"val": val, "train": [i for i in range(12) if i not in val]})
        )
    return tmp_path


def test_tn3k_jpeg_masks_are_thresholded(tn3k_root):
    layout = get_layout("tn3k", tn3k_root)
    refs = layout.index()
    assert (
        len(refs) == 15
        and refs[0].source.endswith("trainval-image/0000.jpg")
        and refs[-1].source.endswith("test-image/0002.jpg")
    )
    raw = read_label_map(refs[3].files["masks"][0])
    assert len(np.unique(raw)) > 2  # the JPEG noise is really there
    sample = layout.load(refs[3])
    assert set(np.unique(sample.mask)) == {0, 1}
    assert np.array_equal(sample.mask, nodule(3) // 255)
    assert [ref.label for ref in refs[:4]] == [0, 1, 0, 1]


def test_tn3k_official_folds_index_trainval_in_natural_order(tn3k_root):
    layout = get_layout("tn3k", tn3k_root)
    folds = layout.official_folds()
    assert [len(fold) for fold in folds] == [3, 3, 2, 2, 2]
    assert [source.rsplit("/", 1)[-1] for source in folds[0]] == ["0000.jpg", "0005.jpg", "0010.jpg"]
    assert sorted(sum(folds, [])) == sorted(r.source for r in get_layout("tn3k", tn3k_root, subset="trainval").index())
    assert len(get_layout("tn3k", tn3k_root, subset="test").index()) == 3


def test_tn3k_check(tn3k_root, capsys):
    code, report = run_check(capsys, "tn3k", tn3k_root)
    assert code == 0 and report["classes"] == {"benign": 8, "malignant": 7, "thyroid_nodule": 15}
    truncate(tn3k_root / "Thyroid Dataset" / "tn3k" / "test-mask" / "0001.jpg")
    code, report = run_check(capsys, "tn3k", tn3k_root)
    assert code == 1 and len(report["problems"]) == 1 and "test-mask/0001.jpg" in report["problems"][0]


@pytest.fixture
def tg3k_root(tmp_path):
    base = tmp_path / "Thyroid Dataset" / "tg3k"
    for k in range(12):
        write_image(base / "thyroid-image" / f"{k:04d}.jpg", speckle(H, W, k))
        write_image(base / "thyroid-mask" / f"{k:04d}.jpg", nodule(k), quality=60)
    (base / "tg3k-trainval.json").write_text(json.dumps({"train": list(range(9)), "val": [9, 10, 11]}))
    return tmp_path


def test_tg3k_split_json(tg3k_root, capsys):
    val = get_layout("tg3k", tg3k_root, split="val").index()
    assert [ref.source.rsplit("/", 1)[-1] for ref in val] == ["0009.jpg", "0010.jpg", "0011.jpg"]
    assert len(get_layout("tg3k", tg3k_root, split="train").index()) == 9
    code, report = run_check(capsys, "tg3k", tg3k_root)
    assert code == 0 and report["n_items"] == 12 and report["classes"] == {"thyroid_gland": 12}


def test_tg3k_split_json_past_the_files_is_an_error(tg3k_root):
    (tg3k_root / "Thyroid Dataset" / "tg3k" / "tg3k-trainval.json").write_text(json.dumps({"train": [0], "val": [12]}))
    with pytest.raises(LayoutError, match="tg3k-trainval.json: indices \\[12\\]"):
        get_layout("tg3k", tg3k_root, split="val").index()


@pytest.fixture
def ddti_root(tmp_path):
    base = tmp_path / "Thyroid Dataset" / "DDTI dataset" / "DDTI"
    for k in (1, 2, 10):
        write_image(base / "1_or_data" / "image" / f"{k}.PNG", speckle(H, W, k), format="PNG")
        write_image(
            base / "1_or_data" / "mask" / f"{k}.PNG", nodule(k) // (255 if k != 2 else 1), format="PNG"
        )  # 0/1 and 0/255
        write_image(base / "2_preprocessed_data" / "stage1" / "p_image" / f"{k}.PNG", speckle(16, 16, k), format="PNG")
        write_image(
            base / "2_preprocessed_data" / "stage1" / "p_mask" / f"{k}.PNG",
            box(16, 16, slice(2, 4), slice(2, 4)),
            format="PNG",
        )
    return tmp_path


def test_ddti_mixed_encodings_and_stages(ddti_root):
    layout = get_layout("ddti", ddti_root)
    refs = layout.index()
    assert [ref.source.rsplit("/", 1)[-1] for ref in refs] == ["1.PNG", "2.PNG", "10.PNG"]
    masks = [layout.load(ref).mask for ref in refs]
    assert all(np.array_equal(mask, nodule(k) // 255) for mask, k in zip(masks, (1, 2, 10)))
    stage1 = get_layout("ddti", ddti_root, stage="stage1")
    assert [int(stage1.load(ref).mask.sum()) for ref in stage1.index()] == [4, 4, 4]


def test_ddti_still_zipped_says_unzip(tmp_path):
    (tmp_path / "Thyroid Dataset" / "DDTI dataset").mkdir(parents=True)
    (tmp_path / "Thyroid Dataset" / "DDTI dataset" / "DDTI.zip").write_bytes(b"PK")
    with pytest.raises(LayoutError, match="DDTI.zip: DDTI is still zipped"):
        get_layout("ddti", tmp_path).index()
