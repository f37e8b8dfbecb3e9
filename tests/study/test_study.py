"""The study command end to end at toy budgets: every stage runs, resumes, and RESULTS.md has a table per task."""

import json
from pathlib import Path

import pytest
import yaml

from anaus_pl.study import StudyConfig, compare, rewrite_paths

ROOT = Path(__file__).resolve().parents[2]


def test_rewrite_paths_moves_defaults_into_the_study():
    loaded = {"a": "data/phantom/busi", "b": ["runs", "runs/adapt/default/last.ckpt"], "c": "data/phantomx", "d": 3}
    assert rewrite_paths(loaded, "S/data", "S") == {"a": "S/data/busi", "b": ["S", "S/adapt/default/last.ckpt"], "c": "data/phantomx", "d": 3}


def test_compare_states_differences_against_the_fold_std():
    rows = {"anaus": (0.80, 0.02), "random": (0.70, 0.03), "byol": (0.79, 0.02)}
    better, within = compare(rows, "anaus")
    assert "anaus is better than random by 0.100" in better and "more than the fold std (0.030)" in better
    assert "within the fold std (0.020)" in within


def test_shipped_study_config_loads():
    config = StudyConfig.load(ROOT / "configs/study/phantom.yaml")
    assert set(config.variants) == {"anaus", "no-core", "no-alignment", "detcon-grid", "image-infonce"} and config.budget_minutes == 60


@pytest.mark.slow
def test_study_smoke_produces_results_and_resumes(tmp_path, monkeypatch):
    from anaus_pl.study import main

    monkeypatch.chdir(ROOT)
    config = yaml.safe_load((ROOT / "configs/study/phantom.yaml").read_text())
    tiny = ["--trainer.max_steps=1", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false"]
    config.update(
        out_dir=str(tmp_path / "study"), results_md=str(tmp_path / "docs" / "RESULTS.md"),
        phantom=[["--size", "small", "--layouts", "ddti", "tg3k", "camus", "butterfly", "busi"]],
        adapt={"config": "stages/adapt.yaml", "overrides": tiny},
        annotate={"config": "stages/annotate.yaml", "overrides": ["--data.init_args.num_workers=0"]},
        pretrain={"config": "stages/pretrain.yaml", "overrides": [*tiny, "--data.init_args.num_workers=0",
                                                                  "--model.init_args.log_images_every_n_steps=0"]},
        variants={"anaus": [], "image-infonce": ["--data.init_args.mask_source=none"]},
        only_tasks=["busi-cls"], label_fractions=[0.5, 1.0],
        evaluate={"config": "stages/evaluate.yaml", "set": {"n_folds": 2}, "task_set": {"epochs": 1}},
    )
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["--config", str(path)]) == 0
    text = (tmp_path / "docs" / "RESULTS.md").read_text()
    assert "## busi-cls (accuracy" in text and "| anaus |" in text and "| image-infonce |" in text and "| random |" in text
    assert "50% labels" in text and f"anaus-pl study --config {path}" in text and "What the numbers support" in text
    assert "| anaus | 1 | 16 | " in text and "What they do not support" in text  # max_steps=1, batch 16
    record = json.loads(next((tmp_path / "study/evaluate/labels050/results/busi-cls").rglob("fold0.json")).read_text())
    assert record["label_fraction"] == 0.5
    timings = json.loads((tmp_path / "study" / "timings.json").read_text())
    assert main(["--config", str(path)]) == 0  # resumed: nothing reruns
    assert json.loads((tmp_path / "study" / "timings.json").read_text()) == timings
