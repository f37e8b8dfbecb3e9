"""UDIAT Dataset B (PNG pairs + xlsx types) and the SAMUS US30K converted layout."""

import numpy as np
import pytest
from layout_trees import box, run_check, speckle, write_image, write_xlsx

from anaus_pl.data.layouts import LayoutError, get_layout


@pytest.fixture
def udiat_root(tmp_path):
    base = tmp_path / "Dataset_B"
    for k, (h, w) in enumerate([(23, 31), (40, 17), (25, 25)], 1):
        write_image(base / "original" / f"{k:06d}.png", speckle(h, w, k))
        write_image(base / "GT" / f"{k:06d}.png", box(h, w, slice(2, 6), slice(3, 9)))
    write_xlsx(
        base / "DatasetB.xlsx",
        [["Image", "Type", "Diagnosis"], [1, "Benign", "CYST"], [2, "Malignant", "IDC"], [3, "Benign", "FIBROADENOMA"]],
    )
    return tmp_path


def test_udiat_pairs_and_types(udiat_root, capsys):
    layout = get_layout("udiat", udiat_root)
    refs = layout.index()
    assert [ref.label for ref in refs] == [0, 1, 0]
    sample = layout.load(refs[1])
    assert sample.image.shape == (40, 17) and int(sample.mask.sum()) == 24 and sample.mask.max() == 1
    code, report = run_check(capsys, "udiat", udiat_root)
    assert code == 0 and report["classes"] == {"benign": 2, "malignant": 1, "breast_lesion": 3}


def test_udiat_missing_mask_is_named(udiat_root, capsys):
    (udiat_root / "Dataset_B" / "GT" / "000002.png").unlink()
    code, report = run_check(capsys, "udiat", udiat_root)
    assert code == 1 and report["problems"] == [
        f"{udiat_root}/Dataset_B/GT/000002.png: file not found (check the data root and the layout name)"
    ]


@pytest.fixture
def us30k_root(tmp_path):
    base = tmp_path / "US30K"
    rgb = np.stack([speckle(16, 16)] * 3, -1)
    write_image(base / "Breast-BUSI" / "img" / "benign0001.png", rgb)
    write_image(base / "Breast-BUSI" / "label" / "benign0001.png", box(16, 16, slice(0, 4), slice(0, 4)) > 0)  # 1-bit
    camus = np.zeros((16, 16), np.uint8)
    camus[0:2], camus[2:4], camus[4:6] = 1, 2, 3
    for name in ("0001_2CH_000", "0002_4CH_000"):
        write_image(base / "Echocardiography-CAMUS" / "img" / f"{name}.png", speckle(16, 16))
        write_image(base / "Echocardiography-CAMUS" / "label" / f"{name}.png", camus)
    write_image(base / "ThyroidNodule-TG3K" / "img" / "trainval0000.png", speckle(16, 16))
    write_image(base / "ThyroidNodule-TG3K" / "label" / "trainval0000.png", box(16, 16, slice(0, 1), slice(0, 16)))
    (base / "MainPatient").mkdir()
    (base / "MainPatient" / "class.json").write_text(
        '{"Breast-BUSI":2,"Echocardiography-CAMUS":4,"ThyroidNodule-TG3K":2}'
    )
    (base / "MainPatient" / "test.txt").write_text("Breast-BUSI/benign0001\nEchocardiography-CAMUS/0002_4CH_000")
    return tmp_path


def test_us30k_maps_every_folder_into_one_vocabulary(us30k_root, capsys):
    layout = get_layout("us30k", us30k_root)
    by_name = {ref.source.rsplit("/", 1)[-1]: layout.load(ref) for ref in layout.index()}
    anatomy = layout.anatomy
    assert np.unique(by_name["benign0001.png"].mask).tolist() == [0, anatomy.index("breast_lesion") + 1]
    camus = by_name["0001_2CH_000.png"].mask
    assert [camus[0, 0], camus[2, 0], camus[4, 0], camus[8, 0]] == [
        anatomy.index(n) + 1 for n in ("lv", "myocardium", "la")
    ] + [0]
    assert by_name["trainval0000.png"].mask.max() == anatomy.index("thyroid_gland") + 1
    assert by_name["0001_2CH_000.png"].patient == "Echocardiography-CAMUS/0001"
    code, report = run_check(capsys, "us30k", us30k_root)
    assert code == 0 and report["n_patients"] == 2
    assert report["classes"] == {"breast_lesion": 1, "la": 2, "lv": 2, "myocardium": 2, "thyroid_gland": 1}


def test_us30k_split_and_folder_selection(us30k_root):
    test = get_layout("us30k", us30k_root, split="test").index()
    assert [ref.source.rsplit("/", 1)[-1] for ref in test] == ["benign0001.png", "0002_4CH_000.png"]
    assert len(get_layout("us30k", us30k_root, folders=["ThyroidNodule-TG3K"]).index()) == 1
    with pytest.raises(LayoutError, match="unknown folders"):
        get_layout("us30k", us30k_root, folders=["Lung-X"])


def test_us30k_camus_value_out_of_range_is_named(us30k_root):
    label = us30k_root / "US30K" / "Echocardiography-CAMUS" / "label" / "0001_2CH_000.png"
    write_image(label, np.full((16, 16), 4, np.uint8))
    layout = get_layout("us30k", us30k_root, folders=["Echocardiography-CAMUS"])
    with pytest.raises(ValueError, match=r"0001_2CH_000.png: mask holds values \[4\]"):
        layout.load(layout.index()[0])
