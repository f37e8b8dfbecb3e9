"""The generic layouts (``folder``, ``datalist``) on trees and lists built here, through check, adapt and evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer, seed_everything

from anaus_pl.data.datamodules.adapt import AdaptDataModule, PairAugment, PairSource
from anaus_pl.data.layouts import LayoutError, get_layout
from anaus_pl.data.layouts._generic import mask_encoding
from anaus_pl.data.layouts.cli import main as datasets_main
from anaus_pl.evaluation.config import EvaluateConfig, TaskConfig
from anaus_pl.evaluation.runner import evaluate, folds_path, result_path
from anaus_pl.models.lpsam import LPSAMConfig
from anaus_pl.tasks.adapt import AdaptTask, load_lpsam


def _scan(seed: int, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Speckle with a bright disc (mask value 1) and a dark bar (mask value 2)."""
    rng = np.random.default_rng(seed)
    image = (rng.random((size, size + 8)) * 60 + 90).astype(np.uint8)
    mask = np.zeros_like(image)
    cv2.circle(mask, (12 + seed % 5, 20), 7, 1, -1)
    mask[6:10, 26:42] = 2
    image[mask == 1] = 230
    image[mask == 2] = 15
    return image, mask


@pytest.fixture
def seg_tree(tmp_path: Path) -> Path:
    """``images/`` + ``masks/`` of 4 patients x 3 scans, masks stored as 0/100/200."""
    root = tmp_path / "mydata"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(12):
        image, mask = _scan(i)
        cv2.imwrite(str(root / "images" / f"pat{i // 3}_scan{i}.png"), image)
        cv2.imwrite(str(root / "masks" / f"pat{i // 3}_scan{i}.png"), mask * 100)
    return root


@pytest.fixture
def cls_tree(tmp_path: Path) -> Path:
    """Two class folders; the class is the brightness."""
    root = tmp_path / "mycls"
    for name, level in (("dark", 50), ("bright", 180)):
        (root / name).mkdir(parents=True)
        for i in range(8):
            image = np.random.default_rng(i).normal(level, 10, (36, 40)).clip(0, 255).astype(np.uint8)
            cv2.imwrite(str(root / name / f"v{i // 2}_f{i}.png"), image)
    return root


@pytest.fixture
def seg_csv(seg_tree: Path) -> Path:
    """A CSV next to the tree: relative paths, a group column and two folds."""
    rows = ["image,mask,group,fold"]
    for path in sorted((seg_tree / "images").iterdir()):
        patient = path.name.split("_")[0]
        rows.append(
            f"mydata/images/{path.name},mydata/masks/{path.name},{patient},{'A' if patient in ('pat0', 'pat1') else 'B'}"
        )
    (seg_tree.parent / "list.csv").write_text("\n".join(rows) + "\n")
    return seg_tree.parent / "list.csv"


ANATOMY = {100: "disc", 200: "bar"}


def test_mask_encoding_of_each_anatomy_form() -> None:
    assert mask_encoding(None, "t") == (("foreground",), {"value": 1})
    assert mask_encoding(["lesion"], "t") == (("lesion",), {"value": 1})
    assert mask_encoding(["lv", "myo"], "t") == (("lv", "myo"), {"values": {0: 0, 1: 1, 2: 2}})
    # two raw values may name one class; names keep the order of their smallest value
    names, encoding = mask_encoding({255: "lesion", 128: "gland", "64": "lesion"}, "t")
    assert names == ("lesion", "gland") and encoding == {"values": {0: 0, 64: 1, 128: 2, 255: 1}}
    for bad in ({0: "x"}, {300: "x"}, "lesion", [], ["a", "a"]):
        with pytest.raises(LayoutError):
            mask_encoding(bad, "t")


def test_folder_segmentation_maps_values_and_groups_by_pattern(seg_tree: Path) -> None:
    layout = get_layout("folder", str(seg_tree), anatomy=ANATOMY, group_pattern=r"^(pat\d+)_")
    refs = layout.index()
    assert layout.task == "segmentation" and layout.anatomy == ("disc", "bar") and len(refs) == 12
    assert [ref.patient for ref in refs[:5]] == ["pat0"] * 3 + ["pat1"] * 2
    sample = layout.load(refs[0])
    _, truth = _scan(0)
    np.testing.assert_array_equal(sample.mask, truth)  # raw 100 -> disc (1), 200 -> bar (2)
    with pytest.raises(LayoutError, match="does not match group_pattern"):
        get_layout("folder", str(seg_tree), group_pattern=r"^case").index()


def test_folder_classification_takes_labels_from_subfolders(cls_tree: Path) -> None:
    layout = get_layout("folder", str(cls_tree))
    assert layout.task == "classification" and layout.class_names == ("bright", "dark")
    ordered = get_layout("folder", str(cls_tree), classes=["dark", "bright"])
    labels = {Path(ref.source).parent.name: ref.label for ref in ordered.index()}
    assert labels == {"dark": 0, "bright": 1}
    with pytest.raises(LayoutError, match="not among classes"):
        get_layout("folder", str(cls_tree), classes=["dark"])


def test_datalist_csv_resolves_paths_groups_and_folds(seg_csv: Path) -> None:
    layout = get_layout("datalist", str(seg_csv), anatomy=ANATOMY)
    refs = layout.index()
    assert layout.task == "segmentation" and len(refs) == 12 and Path(refs[0].source).is_file()
    assert {ref.patient for ref in refs} == {"pat0", "pat1", "pat2", "pat3"}
    folds = layout.official_folds()
    assert [len(fold) for fold in folds] == [6, 6] and all("pat2_" not in source for source in folds[0])
    np.testing.assert_array_equal(layout.load(refs[5]).mask, _scan(5)[1])


def test_datalist_json_classification_and_clear_errors(cls_tree: Path, tmp_path: Path) -> None:
    records = [{"image": str(path), "label": path.parent.name} for path in sorted(cls_tree.rglob("*.png"))]
    (tmp_path / "list.json").write_text(json.dumps({"training": records, "testing": []}))
    with pytest.raises(LayoutError, match="choose one with key"):
        get_layout("datalist", str(tmp_path / "list.json"))
    layout = get_layout("datalist", str(tmp_path / "list.json"), key="training", classes=["dark", "bright"])
    assert layout.task == "classification" and sorted(ref.label for ref in layout.index()) == [0] * 8 + [1] * 8
    (tmp_path / "bad.csv").write_text("img,mask\na.png,b.png\n")
    with pytest.raises(LayoutError, match="expected 'image'"):
        get_layout("datalist", str(tmp_path / "bad.csv"))
    (tmp_path / "half.csv").write_text("image,label\na.png,x\nb.png,\n")
    with pytest.raises(LayoutError, match=r"rows \[3\] have no 'label'"):
        get_layout("datalist", str(tmp_path / "half.csv"))


def test_datasets_check_passes_the_tree_and_names_a_missing_mask(seg_tree: Path, seg_csv: Path, capsys) -> None:
    assert (
        datasets_main(["check", "--layout", "datalist", "--root", str(seg_csv), "-o", "anatomy={100: disc, 200: bar}"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_items"] == 12 and summary["classes"] == {"bar": 12, "disc": 12} and summary["n_patients"] == 4
    (seg_tree / "masks" / "pat3_scan11.png").unlink()
    assert (
        datasets_main(["check", "--layout", "folder", "--root", str(seg_tree), "-o", "anatomy={100: disc, 200: bar}"])
        == 1
    )
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert len(problems) == 1 and "pat3_scan11.png" in problems[0]


def test_adapt_fits_a_few_steps_on_a_folder_tree(seg_tree: Path, tmp_path: Path) -> None:
    seed_everything(0)
    data = AdaptDataModule(
        [PairSource("folder", str(seg_tree), options={"anatomy": ANATOMY, "group_pattern": r"^(pat\d+)_"})],
        image_size=32,
        batch_size=4,
        augment=PairAugment(p=0.0),
        val_fraction=0.25,
    )
    task = AdaptTask(
        model=LPSAMConfig(
            encoder="vit_micro", image_size=32, pretrained=False, cnn_branch=False, prompt_mlp_dim=32, prompt_rounds=1
        ),
        classes=data.classes,
        adapter_epochs=1,
        overlay_images=0,
    )
    trainer = Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    trainer.fit(task, datamodule=data)
    assert len(data.train_set) == 9 and len(data.val_set) == 3  # one of four patients held out, all of its scans
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    model = load_lpsam(tmp_path / "last.ckpt")
    assert model.vocabulary.names == ("disc", "bar")
    probabilities, _ = model.predict(torch.rand(1, 1, 32, 32))
    assert probabilities.shape == (1, 2, 32, 32)


@pytest.mark.slow
def test_evaluate_runs_a_datalist_and_a_folder_task(seg_csv: Path, cls_tree: Path, tmp_path: Path) -> None:
    tasks = [
        TaskConfig(
            "my-seg",
            "datalist",
            str(seg_csv),
            "segmentation",
            layout_options={"anatomy": ANATOMY},
            head="fpn",
            foreground=["disc"],
            image_size=32,
            epochs=1,
            batch_size=4,
            lr=1e-3,
            fpn_channels=8,
        ),
        TaskConfig(
            "my-cls",
            "folder",
            str(cls_tree),
            "classification",
            layout_options={"group_pattern": r"^(v\d+)_"},
            image_size=32,
            epochs=1,
            batch_size=4,
            lr=1e-3,
        ),
    ]
    out = tmp_path / "eval"
    report = evaluate(EvaluateConfig(tasks=tasks, inits=["random"], out_dir=str(out), n_folds=2, accelerator="cpu"))
    assert report is not None and (out / "report.md").is_file()
    folds = json.loads(folds_path(out, "my-seg", 0).read_text())
    assert folds["origin"].startswith("official") and len(folds["folds"]) == 2  # the CSV's fold column
    for task, metric in zip(tasks, ("dice", "accuracy")):
        for protocol in task.protocols:
            results = [result_path(out, task.name, protocol, "random", 0, k) for k in range(2)]
            assert all(0.0 <= json.loads(path.read_text())["metrics"][metric] <= 1.0 for path in results)


def test_image_only_datalist_feeds_annotate(seg_tree: Path, tmp_path: Path) -> None:
    from anaus_pl.data.frame_sources import FrameInput, index_inputs

    (tmp_path / "frames.csv").write_text("image\nmydata/images/pat0_scan0.png\nmydata/images/pat3_scan11.png\n")
    refs, layouts = index_inputs([FrameInput(path=str(tmp_path / "frames.csv"), layout="datalist")])
    assert layouts[0].task == "frames" and [Path(ref.source).name for ref in refs] == [
        "pat0_scan0.png",
        "pat3_scan11.png",
    ]
    np.testing.assert_array_equal(layouts[0].load(refs[1].layout_ref).image, _scan(11)[0])
