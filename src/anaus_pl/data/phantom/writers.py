"""One writer per public layout, each reproducing the tree a user gets after downloading that data set.

See ``docs/phantom.md`` for the trees and counts, and ``data/README.md`` for
the real layouts they follow. Every item draws from its own generator seeded
by ``(seed, layout, index)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from anaus_pl.data.phantom.breast import breast_scene
from anaus_pl.data.phantom.cardiac import MYOCARDIUM, systole
from anaus_pl.data.phantom.media import (
    write_jpeg,
    write_mat,
    write_nifti_gz,
    write_png,
    write_text,
    write_video,
    write_xlsx,
)
from anaus_pl.data.phantom.recordings import (
    breast_frame,
    cardiac_clip,
    frame_size,
    linear_sweep,
    lung_clip,
    thyroid_frame,
)
from anaus_pl.data.phantom.thyroid import GLAND, NODULE, thyroid_scene

LAYOUT_KEYS = {
    "ddti": 1,
    "tg3k": 2,
    "camus": 3,
    "butterfly": 4,
    "pocus": 5,
    "busi": 6,
    "udiat": 7,
    "tn3k": 8,
    "hmcqu": 9,
}
THYROID_ASPECT, BREAST_ASPECT, LUNG_ASPECT = 1.3, 1.3, 1.15


@dataclass(frozen=True)
class Counts:
    """How many items each layout gets (see ``docs/phantom.md``)."""

    ddti: int = 80
    tg3k: int = 80
    camus_patients: int = 12
    camus_frames: tuple[int, int] = (8, 11)  # half-sequence length range
    butterfly_folders: int = 20
    butterfly_frames: int = 15  # per folder
    butterfly_clips: int = 4
    pocus_videos: int = 20  # per class
    pocus_images: int = 10  # per class
    pocus_frames: int = 8
    busi: int = 40  # per class
    udiat: int = 60
    tn3k_trainval: int = 64
    tn3k_test: int = 16
    hmcqu_a4c: int = 15
    hmcqu_a2c: int = 5
    hmcqu_frames: int = 24
    clip_frames: int = 16


def item_rng(seed: int, layout: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, LAYOUT_KEYS[layout], index])


def progress(items: Iterable, layout: str, total: int) -> Iterable:
    return tqdm(items, desc=f"phantom {layout}", total=total, unit="item", leave=False)


def grey3(image: np.ndarray) -> np.ndarray:
    """Grey stored as three equal channels (BUSI, Butterfly, POCUS frames)."""
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)


def thyroid_kind(rng: np.random.Generator) -> tuple[str, int]:
    """A nodule kind and its TI-RADS-like benign (0) / malignant (1) label."""
    kind = str(rng.choice(["cystic", "benign", "malignant"], p=[0.2, 0.45, 0.35]))
    return kind, int(kind == "malignant")


# --------------------------------------------------------------------------- thyroid nodules / gland


def write_ddti(root: Path, seed: int, counts: Counts) -> None:
    """``Thyroid Dataset/DDTI dataset/DDTI/{1_or_data,2_preprocessed_data}``; masks 0/1 (raw) and 0/255 (preprocessed)."""
    base = root / "Thyroid Dataset" / "DDTI dataset" / "DDTI"
    raw, pre = base / "1_or_data", base / "2_preprocessed_data"
    categories, sizes = [], []
    for n in progress(range(1, counts.ddti + 1), "ddti", counts.ddti):
        rng = item_rng(seed, "ddti", n)
        kind, malignant = thyroid_kind(rng)
        image, labels = thyroid_frame(rng, frame_size(rng, THYROID_ASPECT), kind)
        nodule = (labels == NODULE).astype(np.uint8)
        top, bottom, left, right = (int(v) for v in rng.integers(4, 24, 4))  # the black frame around the scan
        canvas = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
        write_png(raw / "image" / f"{n}.PNG", canvas)
        write_png(
            raw / "mask" / f"{n}.PNG",
            cv2.copyMakeBorder(nodule, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0),
        )
        write_png(
            pre / "stage1" / "p_image" / f"{n}.PNG", cv2.resize(image, (256, 256), interpolation=cv2.INTER_LINEAR)
        )
        write_png(
            pre / "stage1" / "p_mask" / f"{n}.PNG",
            cv2.resize(nodule * 255, (256, 256), interpolation=cv2.INTER_NEAREST),
        )
        y0, y1, x0, x1 = expanded_box(nodule, 0.5)
        write_png(
            pre / "stage2" / "p_image" / f"{n}.PNG",
            cv2.resize(image[y0:y1, x0:x1], (512, 512), interpolation=cv2.INTER_LINEAR),
        )
        write_png(
            pre / "stage2" / "p_mask" / f"{n}.PNG",
            cv2.resize(nodule[y0:y1, x0:x1] * 255, (512, 512), interpolation=cv2.INTER_NEAREST),
        )
        categories.append(f"{n}.PNG,{malignant}")
        sizes.append(f"{n}.PNG,{malignant},{int(nodule.sum())}")
    write_text(raw / "category.csv", "ID,CATE\n" + "\n".join(categories) + "\n")
    write_text(pre / "train.csv", "ID,CATE,size\n" + "\n".join(sizes) + "\n")
    write_text(
        pre / "readme.txt",
        "stage1: black borders removed, 256x256. stage2: nodule ROI expanded by 50%, 512x512.\n"
        "Masks 0/255 here, 0/1 in 1_or_data. Phantom data written by anaus-pl.\n",
    )


def expanded_box(mask: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """Bounding box of a mask grown by ``margin`` of its size on each side, clipped to the image."""
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    if rows.size == 0:
        return 0, height, 0, width
    dy, dx = int((np.ptp(rows) + 1) * margin) + 1, int((np.ptp(cols) + 1) * margin) + 1
    return (
        max(rows.min() - dy, 0),
        min(rows.max() + dy + 1, height),
        max(cols.min() - dx, 0),
        min(cols.max() + dx + 1, width),
    )


def write_tg3k(root: Path, seed: int, counts: Counts) -> None:
    """``Thyroid Dataset/tg3k/thyroid-{image,mask}/NNNN.jpg`` + ``tg3k-trainval.json``; gland masks as noisy JPEG.

    Frames come in runs of constant size, like the 16 source videos of the real set.
    """
    base = root / "Thyroid Dataset" / "tg3k"
    size = None
    for n in progress(range(counts.tg3k), "tg3k", counts.tg3k):
        rng = item_rng(seed, "tg3k", n)
        if n % 10 == 0 or size is None:
            size = frame_size(item_rng(seed, "tg3k", 100000 + n // 10), THYROID_ASPECT)
        kind = str(rng.choice(["none", "cystic", "benign", "malignant"], p=[0.4, 0.15, 0.3, 0.15]))
        image, labels = thyroid_frame(rng, size, kind)
        write_jpeg(base / "thyroid-image" / f"{n:04d}.jpg", image)
        write_jpeg(base / "thyroid-mask" / f"{n:04d}.jpg", ((labels >= GLAND) * 255).astype(np.uint8), quality=75)
    cut = int(round(counts.tg3k * 0.9))
    write_text(
        base / "tg3k-trainval.json", json.dumps({"train": list(range(cut)), "val": list(range(cut, counts.tg3k))})
    )


def write_tn3k(root: Path, seed: int, counts: Counts) -> None:
    """``Thyroid Dataset/tn3k/{trainval,test}-{image,mask}/NNNN.jpg``, fold JSONs (val = i % 5 == k), label CSVs."""
    base = root / "Thyroid Dataset" / "tn3k"
    total = counts.tn3k_trainval + counts.tn3k_test
    bar = iter(progress(range(total), "tn3k", total))
    for split, count, offset in (
        ("trainval", counts.tn3k_trainval, 0),
        ("test", counts.tn3k_test, counts.tn3k_trainval),
    ):
        lines = []
        for n in range(count):
            next(bar)
            rng = item_rng(seed, "tn3k", offset + n)
            kind, malignant = thyroid_kind(rng)
            image, labels = thyroid_frame(rng, frame_size(rng, THYROID_ASPECT), kind)
            write_jpeg(base / f"{split}-image" / f"{n:04d}.jpg", image)
            write_jpeg(base / f"{split}-mask" / f"{n:04d}.jpg", ((labels == NODULE) * 255).astype(np.uint8), quality=75)
            lines.append(f"{n:04d}.jpg,{malignant}")
        write_text(base / f"label4{split}.csv", "\n".join(lines) + "\n")
    for k in range(5):
        folds = {
            "val": [i for i in range(counts.tn3k_trainval) if i % 5 == k],
            "train": [i for i in range(counts.tn3k_trainval) if i % 5 != k],
        }
        write_text(base / f"tn3k-trainval-fold{k}.json", json.dumps(folds))
    for _ in bar:
        pass


# --------------------------------------------------------------------------- breast

BUSI_EXTRA_MASKS = {
    "benign": (4, 25, 54, 58, 83, 92, 93, 98, 100, 163, 173, 181, 195, 315, 346, 424),
    "malignant": (53,),
}


def write_busi(root: Path, seed: int, counts: Counts) -> None:
    """``Dataset_BUSI_with_GT/<class>/<class> (n).png`` + ``_mask.png`` (+ ``_mask_1``/``_mask_2``).

    Images are grey stored as RGB; masks 0/255, most single-channel, some RGB
    or RGBA; normal images have all-zero masks. Second lesions go to
    ``_mask_1`` at the real data set's multi-mask indices that exist here
    (plus the middle malignant case when fewer than 53 are written).
    """
    base = root / "Dataset_BUSI_with_GT"
    classes = ("benign", "malignant", "normal")
    bar = progress(range(3 * counts.busi), "busi", 3 * counts.busi)
    for label, cls in enumerate(classes):
        extra = set(BUSI_EXTRA_MASKS.get(cls, ()))
        if cls == "malignant" and counts.busi < 53:
            extra.add(counts.busi // 2)
        for n in range(1, counts.busi + 1):
            bar.update()
            rng = item_rng(seed, "busi", label * 100000 + n)
            lesions = 0 if cls == "normal" else 1 + (n in extra) + (cls == "benign" and n == 195)
            image, instances = breast_frame(
                rng, frame_size(rng, BREAST_ASPECT), cls, max(lesions, 1) if cls != "normal" else 0
            )
            write_png(base / cls / f"{cls} ({n}).png", grey3(image))
            for instance in range(1, max(lesions, 1) + 1):
                suffix = "_mask" if instance == 1 else f"_mask_{instance - 1}"
                write_png(base / cls / f"{cls} ({n}){suffix}.png", busi_mask_encoding(n, (instances == instance) * 255))
    bar.close()


def busi_mask_encoding(n: int, mask: np.ndarray) -> np.ndarray:
    """Most masks single-channel; every 7th RGB and every 11th RGBA, like the mixed modes of the real files."""
    mask = mask.astype(np.uint8)
    if n % 11 == 5:
        return cv2.merge([mask, mask, mask, np.full_like(mask, 255)])
    if n % 7 == 3:
        return grey3(mask)
    return mask


def write_udiat(root: Path, seed: int, counts: Counts) -> None:
    """``Dataset_B/{original,GT}/NNNNNN.png`` (GT 0/255) + ``DatasetB.xlsx`` (Image, Type, Diagnosis)."""
    base = root / "Dataset_B"
    rows = []
    for n in progress(range(1, counts.udiat + 1), "udiat", counts.udiat):
        rng = item_rng(seed, "udiat", n)
        malignant = rng.random() < 0.33
        image, instances = breast_frame(rng, frame_size(rng, BREAST_ASPECT), "malignant" if malignant else "benign")
        write_png(base / "original" / f"{n:06d}.png", image)
        write_png(base / "GT" / f"{n:06d}.png", ((instances > 0) * 255).astype(np.uint8))
        diagnosis = str(rng.choice(["IDC", "DCIS", "ILC"] if malignant else ["CYST", "FIBROADENOMA", "PAPILLOMA"]))
        rows.append((n, "Malignant" if malignant else "Benign", diagnosis))
    write_xlsx(base / "DatasetB.xlsx", ("Image", "Type", "Diagnosis"), rows)


# --------------------------------------------------------------------------- heart


def write_camus(root: Path, seed: int, counts: Counts) -> None:
    """``CAMUS_public/database_nifti/patientNNNN/`` (2023 release) + ``database_split/subgroup_*.txt``.

    Each view holds a half sequence ED -> ES with labels on every frame
    (0 background, 1 LV, 2 myocardium, 3 LA); the ED/ES files are its first
    and last frames, as in the real release.
    """
    base = root / "CAMUS_public"
    patients = [f"patient{p:04d}" for p in range(1, counts.camus_patients + 1)]
    for p, patient in progress(enumerate(patients, start=1), "camus", len(patients)):
        rng = item_rng(seed, "camus", p)
        folder = base / "database_nifti" / patient
        sex, age = str(rng.choice(["F", "M"])), int(rng.integers(20, 90))
        for view in ("2CH", "4CH"):
            n_frames = int(rng.integers(counts.camus_frames[0], counts.camus_frames[1] + 1))
            frames, labels = cardiac_clip(rng, frame_size(rng, 0.85), view, np.linspace(0.0, 1.0, n_frames))
            sequence, truth = np.stack(frames), np.stack(labels)
            stem = f"{patient}_{view}"
            write_nifti_gz(folder / f"{stem}_half_sequence.nii.gz", sequence)
            write_nifti_gz(folder / f"{stem}_half_sequence_gt.nii.gz", truth)
            for phase, index in (("ED", 0), ("ES", n_frames - 1)):
                write_nifti_gz(folder / f"{stem}_{phase}.nii.gz", sequence[index])
                write_nifti_gz(folder / f"{stem}_{phase}_gt.nii.gz", truth[index])
            ed_area, es_area = (np.count_nonzero(truth[i] == 1) for i in (0, -1))
            ejection = 100.0 * (1.0 - (es_area / max(ed_area, 1)) ** 1.5)
            quality = str(rng.choice(["Good", "Medium", "Poor"], p=[0.5, 0.38, 0.12]))
            write_text(
                folder / f"Info_{view}.cfg",
                f"ED: 1\nES: {n_frames}\nNbFrame: {n_frames}\nSex: {sex}\nAge: {age}\n"
                f"ImageQuality: {quality}\nEF: {ejection:.1f}\nFrameRate: 50.0\n",
            )
        write_text(
            folder / "MANDATORY_CITATION.md",
            "Simulated by anaus-pl (phantom); cite the CAMUS paper when using the real data.\n",
        )
    n_train, n_val = int(len(patients) * 0.8), int(len(patients) * 0.1)
    splits = {
        "training": patients[:n_train],
        "validation": patients[n_train : n_train + n_val],
        "testing": patients[n_train + n_val :],
    }
    for name, members in splits.items():
        write_text(base / "database_split" / f"subgroup_{name}.txt", "\n".join(members) + "\n")


HMCQU_HEADER = ("ECHO", "SEG1", "SEG2", "SEG3", "SEG5", "SEG6", "SEG7", "Reference Frame", "End of Cycle")
HMCQU_MASK_COLUMN = "LV Wall Ground-truth Segmentation Masks"
HMCQU_MASK_SIZE = 224


def hmcqu_name(patient: int, view: str) -> str:
    """``ES0001 _4CH_1``: a space before the view, missing in every 4th name (both occur in the release)."""
    space = "" if patient % 4 == 0 else " "
    return f"ES{patient:04d}{space}_{view}_1"


def write_hmcqu(root: Path, seed: int, counts: Counts) -> None:
    """``HMC-QU/{A4C,A2C}/<ECHO>.avi``, ``LV Ground-truth Segmentation Masks/Mask_<ECHO>.mat``, ``A4C.xlsx``, ``A2C.xlsx``.

    Masks: key ``predicted``, ``(F, 224, 224)`` uint8 {0, 1} myocardium for the
    frames ``Reference Frame .. End of Cycle`` (1-based, inclusive) of the
    video, resized from the video frame size; 80 % of A4C recordings have one.
    """
    tables: dict[str, list[tuple]] = {"A4C": [], "A2C": []}
    jobs = [("A4C", "4CH", p) for p in range(1, counts.hmcqu_a4c + 1)] + [
        ("A2C", "2CH", p) for p in range(1, counts.hmcqu_a2c + 1)
    ]
    with_mask = set(range(1, int(round(counts.hmcqu_a4c * 0.8)) + 1))
    for folder, view, patient in progress(jobs, "hmcqu", len(jobs)):
        rng = item_rng(seed, "hmcqu", patient * 10 + (folder == "A2C"))
        cycle = int(rng.integers(int(counts.hmcqu_frames * 0.6), int(counts.hmcqu_frames * 0.8) + 1))
        reference = int(rng.integers(1, counts.hmcqu_frames - cycle + 2))  # 1-based
        end = reference + cycle - 1
        phases = [(f - (reference - 1)) / cycle for f in range(counts.hmcqu_frames)]
        frames, labels = cardiac_clip(
            rng, frame_size(rng, 1.45, even=True, low=150), view, [systole(p) for p in phases]
        )
        echo = hmcqu_name(patient, view)
        write_video(root / "HMC-QU" / folder / f"{echo}.avi", frames, fps=25.0)
        segments = [int(v) for v in rng.random(6) < (0.4 if rng.random() < 0.65 else 0.0)]
        row = (echo, *segments, reference, end)
        if folder == "A4C":
            has_mask = patient in with_mask
            tables["A4C"].append((*row, "ü" if has_mask else None))
            if has_mask:
                walls = np.stack(
                    [
                        cv2.resize(
                            (labels[f] == MYOCARDIUM).astype(np.uint8),
                            (HMCQU_MASK_SIZE, HMCQU_MASK_SIZE),
                            interpolation=cv2.INTER_NEAREST,
                        )
                        for f in range(reference - 1, end)
                    ]
                )
                write_mat(root / "LV Ground-truth Segmentation Masks" / f"Mask_{echo}.mat", {"predicted": walls})
        else:
            tables["A2C"].append(row)
    write_xlsx(root / "A4C.xlsx", (*HMCQU_HEADER, HMCQU_MASK_COLUMN), tables["A4C"])
    write_xlsx(root / "A2C.xlsx", HMCQU_HEADER, tables["A2C"])


# --------------------------------------------------------------------------- lung

POCUS_VIDEO_NAMES = {
    "covid": ("Cov-Atlas+({n}).gif", "Cov_phantom_vid{n}.avi", "Cov_convex_phantom_v{n}.mp4"),
    "pneumonia": ("Pneu-Atlas-pneumonia{n}.gif", "Pneu_northumbria_{n:04d}_set1_vid1.avi", "Pneu_phantom_vid{n}.mp4"),
    "regular": ("Reg-Atlas-alines{n}.gif", "Reg_phantom_vid{n}.avi", "Reg_Avi_lung-sliding{n}.mp4"),
}
POCUS_IMAGE_PREFIX = {"covid": "Cov_phantom_image", "pneumonia": "Pneu_phantom_image", "regular": "Reg_phantom_image"}
POCUS_IMAGE_SUFFIXES = (".png", ".jpg", ".JPG", ".jpeg")


def write_pocus(root: Path, seed: int, counts: Counts) -> None:
    """``covid19_ultrasound/data/pocus_{videos,images}/convex/``: class from the file name prefix (Cov/Pneu/Reg).

    Videos are gif, avi (MJPG) and mp4 (mp4v); one pneumonia video has the
    real repository's lower-case prefix (``pneu-everyday.gif``). Stills mix
    .png/.jpg/.JPG/.jpeg.
    """
    data = root / "covid19_ultrasound" / "data"
    per_class = counts.pocus_videos + counts.pocus_images
    bar = progress(range(3 * per_class), "pocus", 3 * per_class)
    for label, cls in enumerate(("covid", "pneumonia", "regular")):
        for n in range(counts.pocus_videos):
            bar.update()
            rng = item_rng(seed, "pocus", label * 100000 + n)
            name = (
                "pneu-everyday.gif" if (cls, n) == ("pneumonia", 0) else POCUS_VIDEO_NAMES[cls][n % 3].format(n=n + 1)
            )
            frames = lung_clip(rng, frame_size(rng, LUNG_ASPECT, even=True), cls, counts.pocus_frames)
            write_video(data / "pocus_videos" / "convex" / name, frames, fps=float(rng.choice([10.0, 15.0, 20.0])))
        for n in range(counts.pocus_images):
            bar.update()
            rng = item_rng(seed, "pocus", label * 100000 + 50000 + n)
            image = lung_clip(rng, frame_size(rng, LUNG_ASPECT), cls, 1)[0]
            suffix = POCUS_IMAGE_SUFFIXES[n % len(POCUS_IMAGE_SUFFIXES)]
            path = data / "pocus_images" / "convex" / f"{POCUS_IMAGE_PREFIX[cls]}{n + 1}{suffix}"
            (write_png if suffix == ".png" else write_jpeg)(path, grey3(image))
    bar.close()


BUTTERFLY_FOLDERS = (
    ("Cov", "covid", "Cov-B lines {n}"),
    ("Cov", "covid", "Cov-Irregular Pleural Line {n}"),
    ("Cov", "covid", "Cov-Subpleural Consolidation {n}"),
    ("Reg", "regular", "Reg-Normal Lung A lines {n}"),
)
BUTTERFLY_CLIPS = ("cardiac_a4c_{n}.avi", "thyroid_sweep_{n}.mp4", "breast_sweep_{n}.avi", "lung_{n}.mp4")


def write_butterfly(root: Path, seed: int, counts: Counts) -> None:
    """``Butterfly_Dataset/<Cls>-<name>_mp4/<Cls>-<name>_mp4_frame<k>.jpg`` (every 3rd frame) + ``videos/`` clips.

    The frame folders are lung videos as in USCL's Butterfly set; ``videos/``
    holds unlabeled clips of every anatomy (heart, thyroid, breast, lung) for
    the annotate and pretrain stages.
    """
    total = counts.butterfly_folders + counts.butterfly_clips
    bar = progress(range(total), "butterfly", total)
    for n in range(counts.butterfly_folders):
        bar.update()
        rng = item_rng(seed, "butterfly", n)
        _, kind, pattern = BUTTERFLY_FOLDERS[n % len(BUTTERFLY_FOLDERS)]
        video = pattern.format(n=n // len(BUTTERFLY_FOLDERS) + 1) + "_mp4"
        frames = lung_clip(rng, frame_size(rng, LUNG_ASPECT), kind, counts.butterfly_frames)
        for k, frame in enumerate(frames):
            write_jpeg(root / "Butterfly_Dataset" / video / f"{video}_frame{3 * k}.jpg", grey3(frame))
    for n in range(counts.butterfly_clips):
        bar.update()
        rng = item_rng(seed, "butterfly", 100000 + n)
        kind = n % len(BUTTERFLY_CLIPS)
        name = BUTTERFLY_CLIPS[kind].format(n=n // len(BUTTERFLY_CLIPS) + 1)
        frames = butterfly_clip(rng, kind, counts.clip_frames)
        write_video(root / "videos" / name, frames, fps=20.0)
    bar.close()


def butterfly_clip(rng: np.random.Generator, kind: int, n_frames: int) -> list[np.ndarray]:
    """Clip ``kind``: 0 beating heart, 1 thyroid sweep, 2 breast sweep, 3 lung."""
    if kind == 0:
        frames, _ = cardiac_clip(
            rng, frame_size(rng, 1.3, even=True), "4CH", [systole(t / 12) for t in range(n_frames)]
        )
        return frames
    if kind == 1:
        nodule = str(rng.choice(["none", "cystic", "benign", "malignant"]))
        return linear_sweep(
            lambda h, w, r: thyroid_scene(h, w, r, nodule), rng, frame_size(rng, THYROID_ASPECT, even=True), n_frames
        )[0]
    if kind == 2:
        lesion = str(rng.choice(["benign", "malignant", "normal"]))
        return linear_sweep(
            lambda h, w, r: breast_scene(h, w, r, lesion), rng, frame_size(rng, BREAST_ASPECT, even=True), n_frames
        )[0]
    return lung_clip(
        rng, frame_size(rng, LUNG_ASPECT, even=True), str(rng.choice(["covid", "pneumonia", "regular"])), n_frames
    )


WRITERS = {
    "ddti": write_ddti,
    "tg3k": write_tg3k,
    "camus": write_camus,
    "butterfly": write_butterfly,
    "pocus": write_pocus,
    "busi": write_busi,
    "udiat": write_udiat,
    "tn3k": write_tn3k,
    "hmcqu": write_hmcqu,
}
