"""evaluate's configuration composes like the other stages: tasks by name, trainer presets, run names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from anaus_pl.evaluation import cli, runner
from anaus_pl.evaluation.cli import merge_tasks, parse

ROOT = Path(__file__).resolve().parents[2]
STAGE = str(ROOT / "stages" / "evaluate.yaml")


def test_merge_tasks_overrides_by_name_appends_new_and_drops() -> None:
    tasks = [{"name": "a", "epochs": 4, "lr": 0.1}, {"name": "b", "epochs": 4}]
    merged = merge_tasks(tasks, [{"name": "a", "epochs": 9}, {"name": "c", "epochs": 1}], drop=["b"])
    assert merged == [{"name": "a", "epochs": 9, "lr": 0.1}, {"name": "c", "epochs": 1}]
    assert tasks[0]["epochs"] == 4  # the input is left alone
    with pytest.raises(ValueError, match="has no 'name'"):
        merge_tasks(tasks, [{"epochs": 2}], drop=[])
    with pytest.raises(ValueError, match=r"no tasks \['z'\]"):
        merge_tasks(tasks, [], drop=["z"])


@pytest.mark.parametrize(
    "preset, accelerator, precision",
    [("gpu", "gpu", "bf16-mixed"), ("ddp", "gpu", "bf16-mixed"), ("cpu", "cpu", "32-true")],
)
def test_trainer_presets_compose_with_evaluate(preset: str, accelerator: str, precision: str) -> None:
    config = parse(["--config", STAGE, "--config", str(ROOT / "configs" / "trainer" / f"{preset}.yaml")])
    assert (config.accelerator, config.devices, config.precision) == (accelerator, 1, precision)
    assert len(config.tasks) == 6
    # a later value on the command line wins over the preset's
    assert (
        parse(
            ["--config", STAGE, "--config", str(ROOT / "configs/trainer/gpu.yaml"), "--trainer.precision", "16-mixed"]
        ).precision
        == "16-mixed"
    )


def test_second_config_changes_one_task_and_adds_one_without_copying(tmp_path: Path) -> None:
    extra = tmp_path / "mine.yaml"
    extra.write_text(
        yaml.safe_dump(
            {
                "add_tasks": [
                    {"name": "busi-seg", "epochs": 3, "root": "data/busi"},
                    {
                        "name": "my-seg",
                        "layout": "folder",
                        "root": "data/mine",
                        "kind": "segmentation",
                        "head": "fpn",
                        "layout_options": {"anatomy": {255: "lesion"}},
                    },
                ],
                "drop_tasks": ["pocus-cls"],
            }
        )
    )
    config = parse(["--config", STAGE, "--config", str(extra), "--add_tasks+", "{name: hmcqu-seg, lr: 0.01}"])
    tasks = {task.name: task for task in config.tasks}
    assert list(tasks) == ["busi-cls", "udiat-seg", "tn3k-seg", "busi-seg", "hmcqu-seg", "my-seg"]
    assert (tasks["busi-seg"].epochs, tasks["busi-seg"].root, tasks["busi-seg"].empty_masks) == (
        3,
        "data/busi",
        "exclude",
    )
    assert tasks["hmcqu-seg"].lr == 0.01 and tasks["hmcqu-seg"].layout_options == {"stride": 3}
    assert tasks["my-seg"].layout_options == {"anatomy": {255: "lesion"}} and tasks["my-seg"].epochs == 30


def test_a_wrong_task_field_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse(["--config", STAGE, "--add_tasks+", "{name: busi-seg, epoch: 3}"])
    with pytest.raises(SystemExit):  # a new task without its layout, root and kind
        parse(["--config", STAGE, "--add_tasks+", "{name: new-task, epochs: 3}"])


def test_run_name_fills_paths_and_the_resolved_config_yaml_reruns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "evaluate", lambda config: None)
    monkeypatch.setattr(cli, "check_files", lambda config: None)  # no phantom or encoder under tmp_path
    assert cli.main(["--config", STAGE, "--run", "trial2"]) == 0
    saved = tmp_path / "runs" / "evaluate" / "trial2" / "config.yaml"
    config = parse(["--config", str(saved)])
    assert config.out_dir == "runs/evaluate/trial2" and config.inits[0] == "encoder:runs/pretrain/trial2/encoder.pt"
    assert config == parse(["--config", STAGE, "--run", "trial2"])
    with pytest.raises(SystemExit):
        parse(["--config", STAGE, "--run", "../elsewhere"])
