"""Task kinds as objects: a new kind is one class plus its registration, and the evaluate stage runs it unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from anaus_pl.data.datamodules.finetune import LoadedTask, load_task
from anaus_pl.evaluation import runner
from anaus_pl.evaluation.config import EvaluateConfig, TaskConfig
from anaus_pl.evaluation.kinds import KINDS, DownstreamKind, get_kind, register_kind
from anaus_pl.models.probes import pooled


class Brightness(DownstreamKind):
    """Test-only kind: regress a classification layout's class index (ordinal) from frozen features by kNN."""

    name = "test-ordinal"
    heads = ("none",)
    protocols = ("knn",)
    frozen_protocols = {"knn": "mean label of the 3 nearest neighbours"}
    metrics = ("mae",)
    headline = "mae"
    lower_is_better = frozenset({"mae"})

    def prepare(self, layout, refs, task):
        return refs, load_task(layout, refs, task.image_size, labels=True), list(layout.class_names)

    def build_head(self, *args: Any) -> nn.Module:
        raise AssertionError("a frozen-only kind is never fine-tuned: evaluate must not ask it for a head")

    loss = predict = validation_scores = build_head

    def frozen_predict(
        self, protocol, features, data: LoadedTask, train, test, task, num_classes, seed
    ) -> torch.Tensor:
        vectors = torch.nn.functional.normalize(pooled(features), dim=1)
        nearest = (vectors[test] @ vectors[train].T).topk(3, dim=1).indices
        return torch.from_numpy(data.labels[train]).float()[nearest].mean(1)

    def score(self, prediction, index, data, class_names) -> dict[str, Any]:
        return {"metrics": {"mae": float((prediction - torch.from_numpy(data.labels[index]).float()).abs().mean())}}


@pytest.fixture
def ordinal_kind():
    kind = register_kind(Brightness())
    yield kind
    del KINDS[kind.name]


def test_a_registered_kind_runs_through_evaluate_and_the_report(ordinal_kind, data_root: Path, tmp_path: Path) -> None:
    task = TaskConfig("ordinal", "fake-cls", str(data_root), "test-ordinal", image_size=32)
    assert task.head == "none" and task.protocols == ["knn"]
    out = tmp_path / "out"
    runner.evaluate(EvaluateConfig(tasks=[task], inits=["random"], out_dir=str(out), n_folds=3, accelerator="cpu"))
    entry = json.loads((out / "report.json").read_text())["tasks"]["ordinal"]
    assert entry["kind"] == "test-ordinal" and entry["headline"] == "mae"
    result = entry["protocols"]["knn"]["inits"]["random"]
    assert len(result["folds"]) == 3 and 0 <= result["mean"]["mae"] < 0.5  # brightness classes are easy
    assert "mae" in (out / "report.md").read_text() and (out / "figures" / "ordinal_knn_mae.png").is_file()


def test_shipped_kinds_and_clear_errors() -> None:
    assert {"classification", "segmentation"} <= set(KINDS)
    assert get_kind("classification").stratify and not get_kind("segmentation").stratify
    assert get_kind("segmentation").monitor == "val/dice" and "hd95" in get_kind("segmentation").lower_is_better
    segmentation = get_kind("segmentation")
    assert segmentation.higher_is_better() and not segmentation.higher_is_better("hd95")
    assert not Brightness().higher_is_better() and Brightness().monitor == "val/mae"  # its headline is an error
    with pytest.raises(ValueError, match="registered kinds"):
        get_kind("nope")

    class Other(Brightness):
        name = "classification"

    with pytest.raises(ValueError, match="already registered"):
        register_kind(Other())
