"""CAMUS (2023 NIfTI and 2019 MetaImage releases, labels 0..3) and HMC-QU (videos + .mat masks + xlsx)."""

import numpy as np
import pytest
import scipy.io
from layout_trees import run_check, speckle, truncate, write_video, write_xlsx

from anaus_pl.data.layouts import LayoutError, get_layout

H, W, T = 21, 27, 3


def labels(shift: int = 0) -> np.ndarray:
    label = np.zeros((H, W), np.uint8)
    label[2 + shift : 5 + shift, 1:4], label[8:10, 5:9], label[14:18, 10:20] = 1, 2, 3
    return label


def write_nifti(path, frames: np.ndarray) -> None:
    """``frames`` (H, W) or (T, H, W) stored the NIfTI way, (x, y[, t])."""
    import nibabel

    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(np.transpose(frames), np.eye(4)), str(path))


def write_mhd(path, frame: np.ndarray) -> None:
    import SimpleITK

    path.parent.mkdir(parents=True, exist_ok=True)
    SimpleITK.WriteImage(SimpleITK.GetImageFromArray(frame[None]), str(path))


@pytest.fixture
def camus2023(tmp_path):
    for patient in ("patient0001", "patient0002"):
        folder = tmp_path / "CAMUS_public" / "database_nifti" / patient
        for view in ("2CH", "4CH"):
            for phase, shift in (("ED", 0), ("ES", 1)):
                write_nifti(folder / f"{patient}_{view}_{phase}.nii.gz", speckle(H, W))
                write_nifti(folder / f"{patient}_{view}_{phase}_gt.nii.gz", labels(shift))
            write_nifti(
                folder / f"{patient}_{view}_half_sequence.nii.gz", np.stack([speckle(H, W, t) for t in range(T)])
            )
            write_nifti(folder / f"{patient}_{view}_half_sequence_gt.nii.gz", np.stack([labels(t) for t in range(T)]))
        (folder / "Info_2CH.cfg").write_text("ED: 1\nES: 3\nNbFrame: 3\n")
    return tmp_path


def test_camus_2023_keeps_label_values_and_orientation(camus2023):
    layout = get_layout("camus", camus2023)
    refs = layout.index()
    assert len(refs) == 8 and {ref.patient for ref in refs} == {"patient0001", "patient0002"}
    assert refs[1].source.endswith("patient0001_2CH_ES.nii.gz")
    sample = layout.load(refs[1])
    assert sample.image.shape == (H, W)
    assert np.array_equal(sample.mask, labels(1))


def test_camus_sequence_frames(camus2023, capsys):
    layout = get_layout("camus", camus2023, frames="sequence")
    refs = layout.index()
    assert len(refs) == 2 * 2 * T and refs[2].source.endswith("patient0001_2CH_half_sequence.nii.gz#2")
    assert np.array_equal(layout.load(refs[2]).mask, labels(2))
    code, report = run_check(capsys, "camus", camus2023, "frames=sequence")
    assert code == 0 and report["n_patients"] == 2 and report["classes"] == {"la": 12, "lv": 12, "myocardium": 12}


def test_camus_2019_metaimage(tmp_path, capsys):
    folder = tmp_path / "camus_2019" / "training" / "patient0001"
    for phase in ("ED", "ES"):
        write_mhd(folder / f"patient0001_4CH_{phase}.mhd", speckle(H, W))
        write_mhd(folder / f"patient0001_4CH_{phase}_gt.mhd", labels())
    write_mhd(tmp_path / "camus_2019" / "testing" / "patient0001" / "patient0001_4CH_ED.mhd", speckle(H, W))
    layout = get_layout("camus", tmp_path)
    refs = layout.index()
    assert [ref.source.rsplit("/", 1)[-1] for ref in refs] == ["patient0001_4CH_ED.mhd", "patient0001_4CH_ES.mhd"]
    assert np.array_equal(layout.load(refs[0]).mask, labels())
    truncate(folder / "patient0001_4CH_ES_gt.raw", keep=10)
    code, report = run_check(capsys, "camus", tmp_path)
    assert code == 1 and len(report["problems"]) == 1 and "patient0001_4CH_ES_gt.mhd" in report["problems"][0]
    with pytest.raises(LayoutError, match="no sequence ground truth"):
        get_layout("camus", tmp_path, frames="sequence").index()


def hmcqu_frame(t: int) -> np.ndarray:
    return np.full((48, 64), 40 + 50 * t, np.uint8)


@pytest.fixture
def hmcqu_root(tmp_path):
    base = tmp_path / "archive"
    for echo in ("ES0001 _4CH_1", "ES0002_4CH_1", "ES0003 _4CH_1"):
        write_video(base / "HMC-QU" / "A4C" / f"{echo}.avi", [hmcqu_frame(t) for t in range(4)])
    masks = np.zeros((2, 16, 16), np.uint8)
    masks[0, :4], masks[1, :8] = 1, 1
    for echo in ("ES0001 _4CH_1", "ES0002_4CH_1"):
        (base / "LV Ground-truth Segmentation Masks").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(base / "LV Ground-truth Segmentation Masks" / f"Mask_{echo}.mat", {"predicted": masks})
    write_xlsx(
        base / "A4C.xlsx",
        [
            ["ECHO", "SEG1", "Reference Frame", "End of Cycle", "LV Wall Ground-truth Segmentation Masks"],
            ["ES0001 _4CH_1", 0, 2, 3, "ü"],
            ["ES0002 _4CH_1", 1, 1, 2, "ü"],
            ["ES0003 _4CH_1", 0, 1, 4, None],
        ],
    )
    return tmp_path


def test_hmcqu_frame_ranges_masks_and_patients(hmcqu_root, capsys):
    layout = get_layout("hmcqu", hmcqu_root)
    refs = layout.index()
    assert [ref.source.rsplit("/", 1)[-1] for ref in refs] == [
        "ES0001 _4CH_1.avi#1",
        "ES0001 _4CH_1.avi#2",
        "ES0002_4CH_1.avi#0",
        "ES0002_4CH_1.avi#1",
    ]
    assert [ref.patient for ref in refs] == ["ES0001", "ES0001", "ES0002", "ES0002"]
    sample = layout.load(refs[1])
    assert sample.image.shape == sample.mask.shape == (16, 16)  # resized to the mask grid
    assert abs(int(sample.image.mean()) - 140) < 8  # frame 2 of the video, not frame 1
    assert int(sample.mask.sum()) == 8 * 16
    code, report = run_check(capsys, "hmcqu", hmcqu_root)
    assert code == 0 and report["n_items"] == 4 and report["n_patients"] == 2 and report["classes"] == {"myocardium": 4}


def test_hmcqu_mask_shorter_than_cycle_is_named(hmcqu_root, capsys):
    masks = hmcqu_root / "archive" / "LV Ground-truth Segmentation Masks" / "Mask_ES0001 _4CH_1.mat"
    scipy.io.savemat(masks, {"predicted": np.zeros((1, 16, 16), np.uint8)})
    code, report = run_check(capsys, "hmcqu", hmcqu_root)
    assert code == 1 and report["problems"] == [
        f"{masks}: mask frame 1 out of range (0..0) (the mask holds fewer frames than its image sequence: re-export it)"
    ]


def test_hmcqu_stride_keeps_every_nth_annotated_frame(hmcqu_root):
    every = get_layout("hmcqu", hmcqu_root).index()
    strided = get_layout("hmcqu", hmcqu_root, stride=2).index()
    by_video: dict[str, list[str]] = {}
    for ref in every:
        by_video.setdefault(ref.source.rpartition("#")[0], []).append(ref.source)
    assert [r.source for r in strided] == [s for sources in by_video.values() for s in sources[::2]]
    assert len(strided) < len(every)
    with pytest.raises(LayoutError, match="stride"):
        get_layout("hmcqu", hmcqu_root, stride=0)
