"""Values a stage's YAML writes once reach both classes through AnausCLI's links; disagreements fail clearly."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from anaus_pl.data.datamodules.annotate import AnnotateFramesDataModule, FrameInput
from anaus_pl.lightning_cli import AnausCLI
from anaus_pl.models.lpsam import LPSAMConfig
from anaus_pl.tasks.adapt import AdaptTask
from anaus_pl.tasks.pretrain import PretrainTask

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "tasks"))
from synthetic_store import write_synthetic_store  # noqa: E402


def _cli(monkeypatch: pytest.MonkeyPatch, *args: str, cwd: Path = ROOT) -> AnausCLI:
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["anaus-pl"])  # LightningCLI reads args, not pytest's command line
    return AnausCLI(args=list(args), run=False)


def test_adapt_image_size_and_vocabulary_are_written_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for layout in ("ddti", "tg3k", "camus"):  # the stage's roots only have to exist: building indexes nothing
        (tmp_path / "data" / "phantom" / layout).mkdir(parents=True)
    config = str(ROOT / "stages" / "adapt.yaml")
    cli = _cli(monkeypatch, "--config", config, "--model.init_args.model.image_size", "128", cwd=tmp_path)
    assert cli.datamodule.image_size == cli.model.config.image_size == 128
    assert cli.model.config.classes == cli.datamodule.classes == list(cli.datamodule.vocabulary.names)
    assert cli.datamodule.classes[0] == "thyroid_nodule"


def test_pretrain_batch_size_image_size_and_classes_come_from_the_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = write_synthetic_store(tmp_path / "anatomy.h5")
    cli = _cli(
        monkeypatch,
        "--config",
        "stages/pretrain.yaml",
        f"--data.init_args.store_path={store}",
        "--data.init_args.batch_size=4",
        "--data.init_args.views.image_size=64",
    )
    hparams = cli.model.hparams
    assert (hparams.batch_size, hparams.image_size) == (4, 64)
    assert list(hparams.classes) == cli.datamodule.classes and hparams.classes[0] == "thyroid_nodule"
    assert cli.model.encoder_meta().input_size == 64


def test_pretrain_refuses_batches_it_was_not_built_for() -> None:
    task = PretrainTask(
        batch_size=8, image_size=64, classes=[], scales=["c5"], fpn_channels=8, projector_hidden=8,
        embedding_dim=8, predictor_hidden=8,
    )  # fmt: skip
    task.check_batch({"view1": torch.zeros(8, 1, 64, 64)})
    with pytest.raises(ValueError, match=r"batches of 4 views of 64 px, but the task was built for model.batch_size 8"):
        task.check_batch({"view1": torch.zeros(4, 1, 64, 64)})
    with pytest.raises(ValueError, match="multiple of 32"):
        PretrainTask(batch_size=8, image_size=48, classes=[], scales=["c5"])


def test_adapt_refuses_model_classes_that_differ_from_the_data() -> None:
    config = LPSAMConfig(classes=["b", "a"], encoder="vit_micro", image_size=64, pretrained=False)
    with pytest.raises(ValueError, match=r"model.classes \['b', 'a'\] differ from the data's vocabulary \['a', 'b'\]"):
        AdaptTask(model=config, classes=["a", "b"])
    task = AdaptTask(model=LPSAMConfig(encoder="vit_micro", image_size=64, pretrained=False), classes=["a", "b"])
    assert task.config.classes == ["a", "b"] and task.hparams["model"]["classes"] == ["a", "b"]


def test_annotate_data_takes_the_predictor_size_and_checks_input_classes(tmp_path: Path) -> None:
    data = AnnotateFramesDataModule([FrameInput(str(tmp_path), classes=["lv"])], num_workers=0)
    with pytest.raises(RuntimeError, match="use_predictor"):
        data.predict_dataloader()
    with pytest.raises(ValueError, match="lv"):
        data.use_predictor(64, ["thyroid_nodule"])
    data.use_predictor(64, ["thyroid_nodule", "lv"])
    assert data.image_size == 64 and np.array_equal(data.input_classes, [[False, True]])
