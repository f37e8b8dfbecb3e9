"""The study as a learning curve: config checks, generated verdicts, and the command end to end at toy budgets."""

import json
from pathlib import Path

import pytest
import yaml

from anaus_pl.evaluation.statistics import paired_comparison
from anaus_pl.study import StudyConfig, _verdicts, paired, rewrite_paths

ROOT = Path(__file__).resolve().parents[2]


def test_rewrite_paths_moves_defaults_into_the_study():
    loaded = {"a": "data/phantom/busi", "b": ["runs", "runs/adapt/default/last.ckpt"], "c": "data/phantomx", "d": 3}
    assert rewrite_paths(loaded, "S/data", "S") == {
        "a": "S/data/busi",
        "b": ["S", "S/adapt/default/last.ckpt"],
        "c": "data/phantomx",
        "d": 3,
    }


def test_paired_uses_the_shared_units_of_two_report_entries():
    ours = {"folds": [{"repeat": 0, "fold": k, "accuracy": 0.7 + 0.01 * k} for k in range(4)]}
    other = {"folds": [{"repeat": 0, "fold": k, "accuracy": 0.6 + 0.01 * k + 0.001 * (k % 2)} for k in range(3)]}
    result = paired(ours, other, "accuracy", True)
    assert result.n == 3 and result.mean == pytest.approx(0.1 - 0.001 / 3) and result.verdict == "better"


def test_verdicts_are_generated_from_the_numbers():
    null = [
        paired_comparison([0.5, 0.6, 0.7], [0.52, 0.57, 0.71]),
        paired_comparison([0.5, 0.6, 0.7], [0.49, 0.62, 0.69]),
    ]
    text = _verdicts(null, "x against y")[0]
    assert text.startswith("Of 2 comparisons of x against y, 0 show a gain, 0 a loss and 2 no difference")
    assert f"a true gain of {100 * max(c.detectable for c in null):.1f} pt or more would have shown" in text
    gain = _verdicts([paired_comparison([0.6, 0.7, 0.8], [0.5, 0.6, 0.71])], "x")[0]
    assert "1 show a gain" in gain and "No gain shows" not in gain


def test_shipped_study_config_is_a_learning_curve(tmp_path):
    config = StudyConfig.load(ROOT / "configs/study/phantom.yaml")
    assert set(config.variants) == {"anaus", "grid-mask", "image-infonce", "no-core"} and config.budget_minutes == 60
    assert config.budgets[0] == 0 and len(config.budgets) >= 3 and config.reference == "anaus"
    raw = yaml.safe_load((ROOT / "configs/study/phantom.yaml").read_text())
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**raw, "budgets": [50, 200]}))
    with pytest.raises(ValueError, match="budgets must hold 0"):
        StudyConfig.load(path)


def test_a_stopped_pretraining_run_is_not_taken_as_finished(tmp_path):
    import json

    from anaus_pl.study import Study

    config = StudyConfig.load(ROOT / "configs/study/phantom.yaml")
    config.out_dir = str(tmp_path)
    study = Study(config, "phantom.yaml")
    encoder = study.encoder("anaus", 200)
    assert not study.pretrained("anaus", 200)  # nothing exported yet
    encoder.parent.mkdir(parents=True)
    encoder.write_bytes(b"weights")
    for done, finished in ((57, False), (200, True)):
        encoder.with_name("encoder.json").write_text(json.dumps({"steps_done": done, "steps_planned": 200}))
        assert study.pretrained("anaus", 200) is finished
        assert study.stopped_short("anaus", 200) == (None if finished else (done, 200))


@pytest.mark.slow
def test_study_smoke_produces_the_learning_curve_and_resumes(tmp_path, monkeypatch):
    from anaus_pl.study import main

    monkeypatch.chdir(ROOT)
    config = yaml.safe_load((ROOT / "configs/study/phantom.yaml").read_text())
    tiny = ["--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false"]
    config.update(
        out_dir=str(tmp_path / "study"),
        results_md=str(tmp_path / "docs" / "RESULTS.md"),
        phantom=[["--size", "small", "--layouts", "ddti", "tg3k", "camus", "butterfly", "busi"]],
        adapt={"config": "stages/adapt.yaml", "overrides": [*tiny, "--trainer.max_steps=1"]},
        annotate={"config": "stages/annotate.yaml", "overrides": ["--data.init_args.num_workers=0"]},
        pretrain={
            "config": "stages/pretrain.yaml",
            "overrides": [*tiny, "--data.init_args.num_workers=0", "--model.init_args.log_images_every_n_steps=0"],
        },
        variants={"anaus": [], "no-core": ["--model.init_args.use_core=false"]},
        budgets=[0, 2],  # two points keep the smoke short; the study itself plots three
        only_tasks=["busi-cls", "busi-seg"],
        evaluate={
            "config": "stages/evaluate.yaml",
            "set": {"n_folds": 2, "repeats": 2, "overlay_cases": 0},
            "task_set": {"probe_epochs": 1},
        },
    )
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["--config", str(path)]) == 0
    text = (tmp_path / "docs" / "RESULTS.md").read_text()
    assert "## busi-cls · knn" in text and "## busi-cls · linear" in text and "## busi-seg · linear" in text
    assert "finetune" not in text.split("## Pretraining budget")[0]  # the study measures frozen encoders only
    assert "| anaus |" in text and "| no-core |" in text and "0 steps | 2 steps |" in text
    assert "| anaus-s2 | 2 | 32 | " in text  # max_steps=2, batch 16
    assert "Of 6 comparisons of a pretrained encoder against the random init" in text  # 3 task-protocols x 2 variants
    assert "Of 3 comparisons of `anaus` against each ablation" in text and "detectable difference" in text
    assert (tmp_path / "docs" / "results_figures" / "learning_curve.png").stat().st_size > 1000
    report = json.loads((tmp_path / "study" / "evaluate" / "report.json").read_text())
    units = report["tasks"]["busi-cls"]["protocols"]["linear"]["inits"]["random"]["folds"]
    assert len(units) == 4  # 2 folds x 2 repeats
    encoder = json.loads((tmp_path / "study" / "pretrain" / "anaus-s2" / "encoder.json").read_text())
    assert set(encoder["monitor"]) >= {"knn_accuracy", "linear_accuracy"}  # the pretraining monitor ran
    timings = json.loads((tmp_path / "study" / "timings.json").read_text())
    assert main(["--config", str(path)]) == 0  # resumed: nothing reruns
    assert json.loads((tmp_path / "study" / "timings.json").read_text()) == timings
