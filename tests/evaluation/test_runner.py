import json
from pathlib import Path

import numpy as np
import pytest

from anaus_pl.evaluation import runner
from anaus_pl.evaluation.config import EvaluateConfig, TaskConfig
from anaus_pl.evaluation.report import PAPER_MODE_NOTE, report_title


def _config(root: Path, out: Path, inits: list[str], tasks: list[TaskConfig] | None = None, **kwargs) -> EvaluateConfig:
    tasks = tasks or [
        TaskConfig(
            "cls",
            "fake-cls",
            str(root),
            "classification",
            protocols=["finetune"],
            image_size=32,
            epochs=1,
            batch_size=8,
            lr=1e-3,
        )
    ]
    return EvaluateConfig(tasks=tasks, inits=inits, out_dir=str(out), n_folds=3, accelerator="cpu", **kwargs)


@pytest.mark.slow
def test_killed_evaluation_resumes_without_redoing_finished_folds(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(data_root, tmp_path / "out", ["random"])
    real_run_unit = runner.run_unit
    calls: list[int] = []

    def killed_at_fold_2(*args, **kwargs):
        if args[1].fold == 2:
            raise KeyboardInterrupt("killed")
        return real_run_unit(*args, **kwargs)

    monkeypatch.setattr(runner, "run_unit", killed_at_fold_2)
    with pytest.raises(KeyboardInterrupt):
        runner.evaluate(config)
    done = sorted(p.name for p in (tmp_path / "out" / "results" / "cls" / "finetune" / "random").glob("*.json"))
    assert done == ["r0_fold0.json", "r0_fold1.json"]
    stamps = {
        name: (tmp_path / "out" / "results" / "cls" / "finetune" / "random" / name).stat().st_mtime_ns for name in done
    }

    def counting(*args, **kwargs):
        calls.append(args[1].fold)
        return real_run_unit(*args, **kwargs)

    monkeypatch.setattr(runner, "run_unit", counting)
    runner.evaluate(config)
    assert calls == [2]
    for name, stamp in stamps.items():
        assert (tmp_path / "out" / "results" / "cls" / "finetune" / "random" / name).stat().st_mtime_ns == stamp
    # a deleted result is recomputed, nothing else
    (tmp_path / "out" / "results" / "cls" / "finetune" / "random" / "r0_fold0.json").unlink()
    calls.clear()
    runner.evaluate(config)
    assert calls == [0]


@pytest.mark.slow
def test_end_to_end_report(data_root: Path, tmp_path: Path, encoder_path: Path) -> None:
    tasks = [
        TaskConfig(
            "cls", "fake-cls", str(data_root), "classification", image_size=32, epochs=1, batch_size=8, lr=1e-3, knn_k=3
        ),
        TaskConfig(
            "seg",
            "fake-official",
            str(data_root),
            "segmentation",
            head="fpn",
            image_size=32,
            epochs=1,
            batch_size=8,
            lr=1e-3,
            patience=1,
            fpn_channels=16,
            probe_epochs=2,
        ),
    ]
    out = tmp_path / "out"
    config = _config(data_root, out, [f"encoder:{encoder_path}", "random"], tasks, repeats=2)
    runner.evaluate(config)
    report = json.loads((out / "report.json").read_text())
    assert set(report["tasks"]) == {"cls", "seg"} and report["reference"] == "random" and "ddof=1" in report["std"]
    cls = report["tasks"]["cls"]["protocols"]
    assert set(cls) == {"finetune", "linear", "knn"}
    encoder = "encoder-" + encoder_path.parent.name
    for protocol in cls.values():
        assert set(protocol["inits"]) == {encoder, "random"}
        entry = protocol["inits"]["random"]
        assert len(entry["folds"]) == 6 and 0 <= entry["mean"]["accuracy"] <= 1  # 3 folds x 2 repeats
        values = [u["accuracy"] for u in entry["folds"]]
        assert entry["std"]["accuracy"] == pytest.approx(np.std(values, ddof=1))
        assert sum(map(sum, entry["pooled_confusion"])) == 60  # every sample tested once per repeat
        comparison = protocol["comparisons"][encoder]["accuracy"]
        ours = [u["accuracy"] for u in protocol["inits"][encoder]["folds"]]
        assert comparison["n"] == 6 and comparison["mean"] == pytest.approx(np.mean(ours) - np.mean(values))
        assert comparison["low"] <= comparison["mean"] <= comparison["high"] and comparison["detectable"] >= 0
    seg = report["tasks"]["seg"]
    assert seg["folds"].startswith("official") and set(seg["protocols"]) == {"finetune", "linear"}
    assert set(seg["protocols"]["linear"]["inits"]["random"]["mean"]) == {"dice", "iou", "ppv", "sensitivity", "hd95"}
    folds = json.loads((out / "folds" / "seg_r0.json").read_text())
    # outside the official folds: img28 (img29 has an empty mask, and empty_masks: exclude dropped it first)
    assert [Path(s).name for s in folds["excluded"]] == ["img28.png"] and len(folds["folds"]) == 3
    assert all(not s.endswith(("img5.png", "img11.png")) for fold in folds["folds"] for s in fold)
    cls_folds = [json.loads((out / "folds" / f"cls_r{r}.json").read_text())["folds"] for r in (0, 1)]
    assert cls_folds[0] != cls_folds[1]  # a repeat redraws generated folds
    assert sorted((out / "features" / "cls").glob("*.pt"))  # frozen features cached once per task and init
    markdown = (out / "report.md").read_text()
    assert "## cls · knn" in markdown and "| random |" in markdown and "**" in markdown and "ddof=1" in markdown
    assert "detectable difference" in markdown and "r1 f2" in markdown
    for name in ("cls_finetune_accuracy", "cls_knn_confusion", "seg_linear_dice", "seg_finetune_overlays"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    assert any((out / "tensorboard" / "report").iterdir())
    assert not (out / "checkpoints").exists()


def test_frozen_protocols_learn_the_fake_tasks(data_root: Path, tmp_path: Path) -> None:
    """kNN and the linear probe read brightness classes off random features; the light decoder finds the disks."""
    tasks = [
        TaskConfig(
            "cls", "fake-cls", str(data_root), "classification", protocols=["linear", "knn"], image_size=32, knn_k=3
        ),
        TaskConfig(
            "seg",
            "fake-seg",
            str(data_root),
            "segmentation",
            protocols=["linear"],
            image_size=32,
            fpn_channels=16,
            probe_epochs=20,
            batch_size=8,
        ),
    ]
    out = tmp_path / "out"
    runner.evaluate(_config(data_root, out, ["random"], tasks, overlay_cases=0))
    report = json.loads((out / "report.json").read_text())["tasks"]
    assert report["cls"]["protocols"]["knn"]["inits"]["random"]["mean"]["accuracy"] > 0.9
    assert report["cls"]["protocols"]["linear"]["inits"]["random"]["mean"]["accuracy"] > 0.9
    assert report["seg"]["protocols"]["linear"]["inits"]["random"]["mean"]["dice"] > 0.5


def test_paper_mode_says_so_in_the_title(data_root: Path, tmp_path: Path) -> None:
    assert PAPER_MODE_NOTE in report_title(_config(data_root, tmp_path, ["random"], selection="test_fold_best_epoch"))
    assert PAPER_MODE_NOTE not in report_title(_config(data_root, tmp_path, ["random"]))


def test_wrong_config_values_are_clear_errors(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs head fpn or maskrcnn"):
        TaskConfig("s", "fake-seg", str(data_root), "segmentation", head="linear")
    with pytest.raises(ValueError, match="init 'imagenet'"):
        _config(data_root, tmp_path, ["imagenet"])
    with pytest.raises(ValueError, match="protocols"):
        TaskConfig("s", "fake-seg", str(data_root), "segmentation", protocols=["knn"])
    with pytest.raises(ValueError, match="unknown downstream task kind 'detection'"):
        TaskConfig("s", "fake-seg", str(data_root), "detection")
    with pytest.raises(ValueError, match="reference 'imagenet'"):
        _config(data_root, tmp_path, ["random", "encoder:x/encoder.pt"], reference="imagenet")


def test_restricted_runs_write_results_only_then_a_full_run_reports(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def fake_unit(config, unit, *args, **kwargs):
        calls.append(unit.fold)
        return {"metrics": {"accuracy": 0.5}, "seconds": 0.0, "fold": unit.fold}

    monkeypatch.setattr(runner, "run_unit", fake_unit)
    monkeypatch.setattr("anaus_pl.evaluation.report.build_report", lambda out, config: out / "report.json")
    out = tmp_path / "out"
    assert runner.evaluate(_config(data_root, out, ["random"], only_folds=[1])) is None
    assert calls == [1] and not (out / "config.json").exists()
    assert runner.evaluate(_config(data_root, out, ["random"])) == out / "report.json"
    assert calls == [1, 0, 2]
    with pytest.raises(ValueError, match="only_folds"):
        _config(data_root, out, ["random"], only_folds=[3])
    with pytest.raises(ValueError, match="only_tasks"):
        _config(data_root, out, ["random"], only_tasks=["nope"])
