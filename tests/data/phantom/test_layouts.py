"""Layout writers: the trees of datasets.md, readable by anaus_pl.data.io, deterministic by seed, and the CLI."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from openpyxl import load_workbook

from anaus_pl.data.io import read_frame, read_image, read_label_map, read_mat_array, read_video_frames, read_volume
from anaus_pl.data.phantom import SIZES, write_phantom
from anaus_pl.data.phantom.writers import WRITERS


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_every_layout_folder_and_the_marker(tiny_phantom):
    assert {p.name for p in tiny_phantom.iterdir()} == set(WRITERS) | {".complete"}


def test_same_seed_same_bytes_other_seed_other_bytes(tiny_phantom, tiny_counts, tmp_path):
    again = write_phantom(tmp_path / "again", seed=3, counts=tiny_counts)
    assert digest(again) == digest(tiny_phantom)
    other = write_phantom(tmp_path / "other", seed=4, counts=tiny_counts, layouts=("udiat", "camus"))
    first, second = digest(tiny_phantom), digest(other)
    shared = [name for name in second if name.endswith((".png", ".nii.gz"))]
    assert shared and all(first[name] != second[name] for name in shared)


def test_thyroid_trees(tiny_phantom, tiny_counts):
    ddti = tiny_phantom / "ddti" / "Thyroid Dataset" / "DDTI dataset" / "DDTI"
    image, mask = (
        read_image(ddti / "1_or_data" / "image" / "1.PNG"),
        read_label_map(ddti / "1_or_data" / "mask" / "1.PNG"),
    )
    assert image.shape == mask.shape and set(np.unique(mask)) == {0, 1}
    assert image[:2].max() == 0  # black frame around the scan
    assert set(np.unique(read_label_map(ddti / "2_preprocessed_data" / "stage1" / "p_mask" / "1.PNG"))) == {0, 255}
    assert read_image(ddti / "2_preprocessed_data" / "stage2" / "p_image" / "1.PNG").shape == (512, 512)
    assert (ddti / "1_or_data" / "category.csv").read_text().splitlines()[0] == "ID,CATE"

    tg3k = tiny_phantom / "tg3k" / "Thyroid Dataset" / "tg3k"
    assert sorted(p.name for p in (tg3k / "thyroid-mask").iterdir()) == ["0000.jpg", "0001.jpg", "0002.jpg"]
    split = json.loads((tg3k / "tg3k-trainval.json").read_text())
    assert sorted(split["train"] + split["val"]) == list(range(tiny_counts.tg3k))

    tn3k = tiny_phantom / "tn3k" / "Thyroid Dataset" / "tn3k"
    jpeg_mask = read_label_map(tn3k / "trainval-mask" / "0000.jpg")
    assert jpeg_mask.max() > 200 and (jpeg_mask > 127).sum() > 20
    fold = json.loads((tn3k / "tn3k-trainval-fold1.json").read_text())
    assert fold["val"] == [i for i in range(tiny_counts.tn3k_trainval) if i % 5 == 1]
    assert (tn3k / "label4test.csv").read_text().splitlines()[0] in ("0000.jpg,0", "0000.jpg,1")
    assert len(list((tn3k / "test-image").iterdir())) == tiny_counts.tn3k_test


def test_breast_trees(tiny_phantom, tiny_counts):
    busi = tiny_phantom / "busi" / "Dataset_BUSI_with_GT"
    assert (busi / "benign" / "benign (4)_mask_1.png").is_file()
    assert (busi / "malignant" / f"malignant ({tiny_counts.busi // 2})_mask_1.png").is_file()
    assert not read_label_map(busi / "normal" / "normal (1)_mask.png").any()
    assert read_label_map(busi / "benign" / "benign (5)_mask.png").max() == 255  # RGBA file
    assert len(list((busi / "malignant").glob("*).png"))) == tiny_counts.busi
    udiat = tiny_phantom / "udiat" / "Dataset_B"
    assert read_frame(udiat / "original" / "000001.png").shape == read_label_map(udiat / "GT" / "000001.png").shape
    rows = list(load_workbook(udiat / "DatasetB.xlsx").active.values)
    assert rows[0][:2] == ("Image", "Type") and [r[0] for r in rows[1:]] == [1, 2, 3]


def test_camus_tree(tiny_phantom):
    patient = tiny_phantom / "camus" / "CAMUS_public" / "database_nifti" / "patient0001"
    sequence, truth = (
        read_volume(patient / "patient0001_4CH_half_sequence.nii.gz"),
        read_volume(patient / "patient0001_4CH_half_sequence_gt.nii.gz"),
    )
    assert sequence.shape == truth.shape and set(np.unique(truth)) == {0, 1, 2, 3}
    ed = read_volume(patient / "patient0001_4CH_ED.nii.gz")
    assert ed.shape == (1, *sequence.shape[1:]) and np.array_equal(ed[0], sequence[0])
    info = dict(line.split(": ") for line in (patient / "Info_4CH.cfg").read_text().splitlines())
    assert int(info["NbFrame"]) == sequence.shape[0] == int(info["ES"])
    assert len(list(patient.iterdir())) == 15


def test_hmcqu_tree(tiny_phantom, tiny_counts):
    root = tiny_phantom / "hmcqu"
    rows = list(load_workbook(root / "A4C.xlsx").active.values)
    header, first = rows[0], rows[1]
    assert header[-3:] == ("Reference Frame", "End of Cycle", "LV Wall Ground-truth Segmentation Masks")
    assert first[0] == "ES0001 _4CH_1" and first[-1] == "ü"
    assert (root / "HMC-QU" / "A4C" / "ES0004_4CH_1.avi").is_file()
    masks = read_mat_array(root / "LV Ground-truth Segmentation Masks" / "Mask_ES0001 _4CH_1.mat")
    reference, end = first[-3], first[-2]
    assert masks.shape == (end - reference + 1, 224, 224) and set(np.unique(masks)) == {0, 1}
    frames = list(read_video_frames(root / "HMC-QU" / "A4C" / "ES0001 _4CH_1.avi"))
    assert len(frames) == tiny_counts.hmcqu_frames


def test_lung_trees(tiny_phantom, tiny_counts):
    data = tiny_phantom / "pocus" / "covid19_ultrasound" / "data"
    videos = sorted(p.name for p in (data / "pocus_videos" / "convex").iterdir())
    assert (
        "pneu-everyday.gif" in videos and "Cov-Atlas+(1).gif" in videos and len(videos) == 3 * tiny_counts.pocus_videos
    )
    for name in videos:
        assert len(list(read_video_frames(data / "pocus_videos" / "convex" / name))) == tiny_counts.pocus_frames
    suffixes = {p.suffix for p in (data / "pocus_images" / "convex").iterdir()}
    assert suffixes == {".png", ".jpg", ".JPG", ".jpeg"}

    butterfly = tiny_phantom / "butterfly"
    folder = butterfly / "Butterfly_Dataset" / "Cov-B lines 1_mp4"
    assert sorted(p.name for p in folder.iterdir()) == [f"Cov-B lines 1_mp4_frame{k}.jpg" for k in (0, 3, 6)]
    clips = sorted(p.name for p in (butterfly / "videos").iterdir())
    assert clips == ["breast_sweep_1.avi", "cardiac_a4c_1.avi", "lung_1.mp4", "thyroid_sweep_1.mp4"]
    assert all(len(list(read_video_frames(butterfly / "videos" / c))) == tiny_counts.clip_frames for c in clips)


def test_cli_writes_layouts_and_marker(tmp_path, tiny_counts, monkeypatch, capsys):
    from anaus_pl.cli import main

    monkeypatch.setitem(SIZES, "small", tiny_counts)
    assert (
        main(["phantom", "--out", str(tmp_path), "--seed", "1", "--size", "small", "--layouts", "udiat", "tg3k"]) == 0
    )
    assert {p.name for p in tmp_path.iterdir()} == {"udiat", "tg3k", ".complete"}
    assert "written to" in capsys.readouterr().out


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="size must be one of"):
        write_phantom("/nonexistent-unused", size="huge")
    with pytest.raises(ValueError, match="unknown phantom layouts"):
        write_phantom("/nonexistent-unused", layouts=("busi", "kidney"))


@pytest.mark.slow
def test_small_size_writes_the_documented_counts(tmp_path):
    out = write_phantom(tmp_path, seed=0, size="small")
    counts = SIZES["small"]
    assert len(list((out / "ddti").rglob("1_or_data/image/*.PNG"))) == counts.ddti
    assert len(list((out / "busi").rglob("*).png"))) == 3 * counts.busi
    assert (
        len(list((out / "butterfly" / "Butterfly_Dataset").rglob("*.jpg")))
        == counts.butterfly_folders * counts.butterfly_frames
    )
    assert len(list((out / "camus" / "CAMUS_public" / "database_nifti").iterdir())) == counts.camus_patients
    assert len(list((out / "hmcqu" / "HMC-QU" / "A4C").iterdir())) == counts.hmcqu_a4c
