"""Run names keep runs apart, and the four paper presets resolve on their own and hand their outputs on.

The chain runs the real presets with small override YAMLs (tiny models, a few steps, a folder tree
built here in place of the public data sets), so what is tested is the presets' wiring: every
stage finds the previous one's output under ``runs/<stage>/{run}/``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from anaus_pl.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "configs" / "paper"
QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1}
CPU = {"accelerator": "cpu", "devices": 1, "strategy": "auto", "precision": "32-true"}
TINY_LPSAM = {
    "encoder": "vit_micro",
    "image_size": 32,
    "checkpoint": None,
    "pretrained": False,
    "cnn_branch": False,
    "prompt_mlp_dim": 32,
    "prompt_rounds": 1,
}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A segmentation tree (images/ + masks/ valued 100 and 200) and a two-class folder tree; cwd is tmp_path."""
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    seg = tmp_path / "mine"
    (seg / "images").mkdir(parents=True)
    (seg / "masks").mkdir()
    for i in range(12):
        rng = np.random.default_rng(i)
        image = (rng.random((40, 48)) * 60 + 90).astype(np.uint8)
        mask = np.zeros_like(image)
        cv2.circle(mask, (12 + i % 5, 20), 7, 100, -1)
        mask[6:10, 26:42] = 200
        image[mask == 100], image[mask == 200] = 230, 15
        cv2.imwrite(str(seg / "images" / f"p{i // 3}_{i}.png"), image)
        cv2.imwrite(str(seg / "masks" / f"p{i // 3}_{i}.png"), mask)
    for name, level in (("dark", 60), ("bright", 170)):
        (tmp_path / "cls" / name).mkdir(parents=True)
        for i in range(6):
            frame = np.random.default_rng(i).normal(level, 12, (36, 40)).clip(0, 255).astype(np.uint8)
            cv2.imwrite(str(tmp_path / "cls" / name / f"v{i}.png"), frame)
    return tmp_path


def _yaml(path: Path, content: dict) -> str:
    path.write_text(yaml.safe_dump(content))
    return str(path)


def _adapt_override(world: Path) -> str:
    return _yaml(
        world / "adapt_small.yaml",
        {
            "trainer": {**CPU, **QUIET, "max_steps": 2, "num_sanity_val_steps": 0},
            "model": {
                "class_path": "anaus_pl.tasks.adapt.AdaptTask",
                "init_args": {"model": TINY_LPSAM, "adapter_epochs": 1, "warmup_steps": 1, "overlay_images": 0},
            },
            "data": {
                "class_path": "anaus_pl.data.datamodules.adapt.AdaptDataModule",
                "init_args": {
                    "sources": [
                        {
                            "layout": "folder",
                            "root": str(world / "mine"),
                            "options": {"anatomy": {100: "disc", 200: "bar"}, "group_pattern": r"^(p\d+)_"},
                        }
                    ],
                    "batch_size": 4,
                    "num_workers": 0,
                },
            },
        },
    )


def test_two_run_names_leave_two_runs_and_the_setup_is_logged(world: Path, caplog: pytest.LogCaptureFixture) -> None:
    override = _adapt_override(world)
    with caplog.at_level(logging.INFO, logger="anaus_pl"):
        for run in ("first", "second"):
            assert main(["fit", "--config", str(ROOT / "stages/adapt.yaml"), "--config", override, "--run", run]) == 0
    assert (
        "run 'first': precision 32-true, accelerator CPUAccelerator, 1 device(s) x 1 node(s), strategy" in caplog.text
    )
    for run in ("first", "second"):
        folder = world / "runs" / "adapt" / run
        assert (folder / "checkpoints" / "last.ckpt").is_file() and len(list(folder.glob("events.out.tfevents.*"))) == 1
        saved = yaml.safe_load((folder / "config.yaml").read_text())
        assert saved["run"] == run and saved["trainer"]["logger"]["init_args"]["version"] == run
    assert sorted(p.name for p in (world / "runs" / "adapt").iterdir()) == ["first", "second"]
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(ROOT / "stages/adapt.yaml"), "--config", override, "--run", "a/b"])


@pytest.mark.parametrize(
    "stage, command", [("adapt", "fit"), ("annotate", "annotate"), ("pretrain", "fit"), ("evaluate", "evaluate")]
)
def test_each_paper_preset_resolves_on_its_own(stage: str, command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) if command != "evaluate" else _no_exit():
        main([command, "--config", str(PAPER / f"{stage}.yaml"), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["run"] == "paper"
    if command == "fit":  # what `configs/paper/adapt.yaml` alone lacked: a logger and last.ckpt
        assert config["trainer"]["logger"]["init_args"]["version"] == "{run}"
        assert any(c["init_args"].get("save_last") for c in config["trainer"]["callbacks"])


class _no_exit:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


@pytest.mark.slow
def test_paper_presets_chain_with_shrunk_sizes(world: Path) -> None:
    run = ["--run", "chain"]
    assert main(["fit", "--config", str(PAPER / "adapt.yaml"), "--config", _adapt_override(world), *run]) == 0
    assert (world / "runs/adapt/chain/checkpoints/last.ckpt").is_file()

    annotate = _yaml(
        world / "annotate_small.yaml",
        {
            "trainer": {"accelerator": "cpu"},
            "data": {
                "class_path": "anaus_pl.data.datamodules.annotate.AnnotateFramesDataModule",
                "init_args": {"batch_size": 4, "num_workers": 0, "inputs": [{"path": str(world / "mine" / "images")}]},
            },
            "store": {"flush_frames": 4, "preview_frames": 2},
        },
    )
    assert main(["annotate", "--config", str(PAPER / "annotate.yaml"), "--config", annotate, *run]) == 0
    assert (world / "runs/annotate/chain/anatomy.h5").is_file()

    pretrain = _yaml(
        world / "pretrain_small.yaml",
        {
            "trainer": {**CPU, **QUIET, "sync_batchnorm": False, "max_steps": 2, "max_epochs": 1},
            "model": {
                "class_path": "anaus_pl.tasks.pretrain.PretrainTask",
                "init_args": {"log_images_every_n_steps": 0},
            },
            "data": {
                "class_path": "anaus_pl.data.datamodules.pretrain.PretrainDataModule",
                "init_args": {"batch_size": 4, "num_workers": 0, "views": {"image_size": 64, "core_size": 64}},
            },
        },
    )
    assert main(["fit", "--config", str(PAPER / "pretrain.yaml"), "--config", pretrain, *run]) == 0
    assert (world / "runs/pretrain/chain/encoder.pt").is_file()

    evaluate = _yaml(
        world / "evaluate_small.yaml",
        {
            "n_folds": 2,
            "num_workers": 0,
            "progress_bar": False,
            "accelerator": "cpu",
            "overlay_cases": 0,
            "drop_tasks": ["pocus-cls", "busi-cls", "udiat-seg", "tn3k-seg", "busi-seg", "hmcqu-seg"],
            "add_tasks": [
                {
                    "name": "mine-cls",
                    "layout": "folder",
                    "root": str(world / "cls"),
                    "kind": "classification",
                    "image_size": 32,
                    "epochs": 1,
                    "batch_size": 4,
                    "lr": 0.001,
                }
            ],
        },
    )
    assert main(["evaluate", "--config", str(PAPER / "evaluate.yaml"), "--config", evaluate, *run]) == 0
    report = world / "runs/evaluate/chain/report.json"
    assert report.is_file() and "runs/pretrain/chain/encoder.pt" in report.read_text()
