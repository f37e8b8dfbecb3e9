"""POCUS (repo videos + stills, USCL fold pickles) and Butterfly (USCL frame folders)."""

import os
import pickle

import numpy as np
import pytest
from layout_trees import run_check, speckle, truncate, write_image, write_video

from anaus_pl.data.layouts import get_layout


def frames(count: int, base: int = 10) -> list[np.ndarray]:
    return [np.full((24, 32), base + 20 * t, np.uint8) for t in range(count)]


@pytest.fixture
def pocus_root(tmp_path):
    data = tmp_path / "covid19_ultrasound" / "data"
    write_video(data / "pocus_videos" / "Convex" / "Cov-Atlas+(44).avi", frames(9), fps=9)  # 3 Hz -> every 3rd frame
    write_video(data / "pocus_videos" / "Convex" / "Pneu_AIR BRONC2.avi", frames(4), fps=3)
    write_video(data / "pocus_videos" / "Convex" / "Vir_excluded.avi", frames(2), fps=3)
    write_video(data / "pocus_videos" / "linear" / "Reg_linear.avi", frames(2), fps=3)
    write_image(data / "pocus_images" / "convex" / "Reg_Avi_Image001.JPG", speckle(20, 30), format="JPEG")
    write_image(
        data / "pocus_images" / "convex" / "Cov_efsumb1.png", np.stack([speckle(20, 30)] * 3 + [speckle(20, 30)], -1)
    )
    return tmp_path


def test_pocus_samples_videos_at_3hz_and_groups_by_video(pocus_root):
    layout = get_layout("pocus", pocus_root)
    refs = layout.index()
    names = [ref.source.rsplit("/", 1)[-1] for ref in refs]
    assert names == [
        "Cov-Atlas+(44).avi#0",
        "Cov-Atlas+(44).avi#3",
        "Cov-Atlas+(44).avi#6",
        "Pneu_AIR BRONC2.avi#0",
        "Pneu_AIR BRONC2.avi#1",
        "Pneu_AIR BRONC2.avi#2",
        "Pneu_AIR BRONC2.avi#3",
        "Cov_efsumb1.png",
        "Reg_Avi_Image001.JPG",
    ]
    assert [ref.label for ref in refs] == [0, 0, 0, 1, 1, 1, 1, 0, 2]
    assert refs[1].patient == "Cov-Atlas+(44).avi" and refs[-1].patient == "Reg_Avi_Image001.JPG"
    sample = layout.load(refs[1])
    assert sample.mask is None and abs(int(sample.image.mean()) - 70) < 6  # frame 3 of the video


def test_pocus_options(pocus_root, capsys):
    assert len(get_layout("pocus", pocus_root, stride=1, max_frames=2).index()) == 2 + 2 + 2
    assert len(get_layout("pocus", pocus_root, probes=["convex", "linear"]).index()) == 9 + 2
    code, report = run_check(capsys, "pocus", pocus_root, "stride=4")
    assert code == 0 and report["task"] == "classification" and report["n_patients"] == 4
    assert report["classes"] == {"covid": 4, "pneumonia": 1, "regular": 1}


def write_fold(path, images: np.ndarray, labels: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump([images[:1], np.array(labels[:1]), images, np.array(labels)], handle)


@pytest.fixture
def uscl_root(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(1, 6):
        images = rng.integers(0, 256, (k % 2 + 1, 3, 12, 10)).astype(np.int64)  # int64, (N, C, A, B)
        write_fold(tmp_path / "covid_5_fold" / f"covid_data{k}.pkl", images, [k % 3] * len(images))
    return tmp_path


def test_pocus_uscl_folds_are_the_test_parts(uscl_root, capsys):
    layout = get_layout("pocus-uscl", uscl_root)
    refs = layout.index()
    assert len(refs) == 2 + 1 + 2 + 1 + 2 and [ref.label for ref in refs[:3]] == [1, 1, 2]
    folds = layout.official_folds()
    assert [len(fold) for fold in folds] == [2, 1, 2, 1, 2] and folds[1] == [refs[2].source]
    sample = layout.load(refs[0])
    with (uscl_root / "covid_5_fold" / "covid_data1.pkl").open("rb") as handle:
        raw = pickle.load(handle)[2][0]
    luma = np.rint(raw.transpose(1, 2, 0) @ np.array([0.299, 0.587, 0.114]))  # USCL layout: X[i].transpose(1, 2, 0)
    assert sample.image.shape == (12, 10) and np.abs(sample.image - luma).max() <= 1
    code, report = run_check(capsys, "pocus-uscl", uscl_root)
    assert (
        code == 0 and report["classes"] == {"covid": 2, "pneumonia": 3, "regular": 3} and report["n_patients"] is None
    )


def test_pocus_uscl_truncated_pickle_is_named(uscl_root, capsys):
    truncate(uscl_root / "covid_5_fold" / "covid_data3.pkl")
    code, report = run_check(capsys, "pocus-uscl", uscl_root)
    assert (
        code == 1
        and len(report["problems"]) == 1
        and "covid_data3.pkl: not a USCL fold pickle" in report["problems"][0]
    )


class RunsCode:
    """Unpickling this object creates ``marker`` (what a crafted pickle would do)."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pocus_uscl_crafted_pickle_does_not_run_code(uscl_root, capsys):
    marker = uscl_root / "pwned"
    images = np.zeros((1, 3, 12, 10), np.uint8)
    with (uscl_root / "covid_5_fold" / "covid_data2.pkl").open("wb") as handle:
        pickle.dump([images, np.array([0]), images, RunsCode(marker)], handle)
    code, report = run_check(capsys, "pocus-uscl", uscl_root)
    assert not marker.exists()
    assert code == 1 and "covid_data2.pkl: not a USCL fold pickle" in report["problems"][0]
    assert "refused to load posix.system" in report["problems"][0]


@pytest.fixture
def butterfly_root(tmp_path):
    for video, count in (("Cov-Irregular Pleural Line_mp4", 12), ("Reg-Normal Lung A lines_mp4", 3)):
        for k in range(0, count, 3):
            write_image(
                tmp_path / "Butterfly_Dataset" / video / f"{video}_frame{k}.jpg", np.full((18, 22), k * 10, np.uint8)
            )
    return tmp_path


def test_butterfly_frames_in_numeric_order_per_video(butterfly_root, capsys):
    layout = get_layout("butterfly", butterfly_root)
    refs = layout.index()
    assert [ref.source.rsplit("_", 1)[-1] for ref in refs] == [
        "frame0.jpg",
        "frame3.jpg",
        "frame6.jpg",
        "frame9.jpg",
        "frame0.jpg",
    ]
    assert refs[0].patient == "Butterfly_Dataset/Cov-Irregular Pleural Line_mp4" and refs[0].label is None
    assert layout.load(refs[3]).image.mean() == pytest.approx(90, abs=3)
    assert len(get_layout("butterfly", butterfly_root, stride=2).index()) == 2 + 1
    code, report = run_check(capsys, "butterfly", butterfly_root)
    assert code == 0 and report["task"] == "frames" and report["n_patients"] == 2 and report["classes"] == {}


def test_butterfly_reads_video_files_and_names_broken_frames(butterfly_root, capsys):
    write_video(butterfly_root / "extra" / "Cov-clip.avi", frames(3))
    truncate(
        butterfly_root / "Butterfly_Dataset" / "Reg-Normal Lung A lines_mp4" / "Reg-Normal Lung A lines_mp4_frame0.jpg"
    )
    code, report = run_check(capsys, "butterfly", butterfly_root)
    assert code == 1 and report["n_items"] == 5 + 3 and report["n_patients"] == 3
    assert (
        len(report["problems"]) == 1
        and "Reg-Normal Lung A lines_mp4_frame0.jpg: not a readable image" in report["problems"][0]
    )
