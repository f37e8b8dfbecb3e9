import json
from pathlib import Path

import pytest

from anaus_pl.evaluation import runner
from anaus_pl.evaluation.config import EvaluateConfig, TaskConfig
from anaus_pl.evaluation.report import PAPER_MODE_NOTE, report_title


def _config(root: Path, out: Path, inits: list[str], tasks: list[TaskConfig] | None = None, **kwargs) -> EvaluateConfig:
    tasks = tasks or [TaskConfig("cls", "fake-cls", str(root), "classification", image_size=32, epochs=1, batch_size=8, lr=1e-3)]
    return EvaluateConfig(tasks=tasks, inits=inits, out_dir=str(out), n_folds=3, accelerator="cpu", **kwargs)


@pytest.mark.slow
def test_killed_evaluation_resumes_without_redoing_finished_folds(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(data_root, tmp_path / "out", ["random"])
    real_run_unit = runner.run_unit
    calls: list[int] = []

    def killed_at_fold_2(*args, **kwargs):
        if args[3] == 2:
            raise KeyboardInterrupt("killed")
        return real_run_unit(*args, **kwargs)

    monkeypatch.setattr(runner, "run_unit", killed_at_fold_2)
    with pytest.raises(KeyboardInterrupt):
        runner.evaluate(config)
    done = sorted(p.name for p in (tmp_path / "out" / "results" / "cls" / "random").glob("*.json"))
    assert done == ["fold0.json", "fold1.json"]
    stamps = {name: (tmp_path / "out" / "results" / "cls" / "random" / name).stat().st_mtime_ns for name in done}

    def counting(*args, **kwargs):
        calls.append(args[3])
        return real_run_unit(*args, **kwargs)

    monkeypatch.setattr(runner, "run_unit", counting)
    runner.evaluate(config)
    assert calls == [2]
    for name, stamp in stamps.items():
        assert (tmp_path / "out" / "results" / "cls" / "random" / name).stat().st_mtime_ns == stamp
    # a deleted result is recomputed, nothing else
    (tmp_path / "out" / "results" / "cls" / "random" / "fold0.json").unlink()
    calls.clear()
    runner.evaluate(config)
    assert calls == [0]


@pytest.mark.slow
def test_end_to_end_report(data_root: Path, tmp_path: Path, encoder_path: Path) -> None:
    tasks = [
        TaskConfig("cls", "fake-cls", str(data_root), "classification", image_size=32, epochs=1, batch_size=8, lr=1e-3),
        TaskConfig("seg", "fake-official", str(data_root), "segmentation", head="fpn", image_size=32, epochs=1, batch_size=8,
                   lr=1e-3, patience=1, fpn_channels=16),
    ]
    out = tmp_path / "out"
    config = _config(data_root, out, [f"encoder:{encoder_path}", "random"], tasks)
    runner.evaluate(config)
    report = json.loads((out / "report.json").read_text())
    assert set(report["tasks"]) == {"cls", "seg"}
    cls = report["tasks"]["cls"]["inits"]
    assert set(cls) == {"encoder-" + encoder_path.parent.name, "random"}
    entry = cls["random"]
    assert len(entry["folds"]) == 3 and 0 <= entry["mean"]["accuracy"] <= 1
    assert sum(map(sum, entry["pooled_confusion"])) == 30  # every sample tested exactly once
    seg = report["tasks"]["seg"]
    assert seg["folds"].startswith("official")
    assert set(seg["inits"]["random"]["mean"]) == {"dice", "iou", "ppv", "sensitivity", "hd95"}
    folds = json.loads((out / "folds" / "seg.json").read_text())
    # outside the official folds: img28 (img29 has an empty mask, and empty_masks: exclude dropped it first)
    assert [Path(s).name for s in folds["excluded"]] == ["img28.png"] and len(folds["folds"]) == 3
    assert all(not s.endswith(("img5.png", "img11.png")) for fold in folds["folds"] for s in fold)
    markdown = (out / "report.md").read_text()
    assert "## cls" in markdown and "| random |" in markdown and "**" in markdown
    for name in ("cls_accuracy", "cls_confusion", "seg_dice", "seg_hd95", "seg_overlays"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    assert any((out / "tensorboard" / "report").iterdir())
    assert not (out / "checkpoints").exists()


def test_paper_mode_says_so_in_the_title(data_root: Path, tmp_path: Path) -> None:
    assert PAPER_MODE_NOTE in report_title(_config(data_root, tmp_path, ["random"], selection="test_fold_best_epoch"))
    assert PAPER_MODE_NOTE not in report_title(_config(data_root, tmp_path, ["random"]))


def test_wrong_config_values_are_clear_errors(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs head fpn or maskrcnn"):
        TaskConfig("s", "fake-seg", str(data_root), "segmentation", head="linear")
    with pytest.raises(ValueError, match="init 'imagenet'"):
        _config(data_root, tmp_path, ["imagenet"])


def test_restricted_runs_write_results_only_then_a_full_run_reports(data_root: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_unit(config, task, init, k, *args, **kwargs):
        calls.append(k)
        return {"metrics": {"accuracy": 0.5}, "seconds": 0.0, "fold": k}

    monkeypatch.setattr(runner, "run_unit", fake_unit)
    monkeypatch.setattr("anaus_pl.evaluation.report.build_report", lambda out, config, folds: out / "report.json")
    out = tmp_path / "out"
    assert runner.evaluate(_config(data_root, out, ["random"], only_folds=[1])) is None
    assert calls == [1] and not (out / "config.json").exists()
    assert runner.evaluate(_config(data_root, out, ["random"])) == out / "report.json"
    assert calls == [1, 0, 2]
    with pytest.raises(ValueError, match="only_folds"):
        _config(data_root, out, ["random"], only_folds=[3])
    with pytest.raises(ValueError, match="only_tasks"):
        _config(data_root, out, ["random"], only_tasks=["nope"])
