"""Image classification: a linear head on pooled features; linear-probe and cosine-kNN frozen protocols."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from anaus_pl.data.datamodules.finetune import LoadedTask, load_task
from anaus_pl.data.layouts.base import Layout, SampleRef
from anaus_pl.evaluation.kinds.base import DownstreamKind, TaskOptions
from anaus_pl.evaluation.metrics import CLASSIFICATION_METRICS, classification_metrics
from anaus_pl.models.downstream import Classifier, StagedEncoder
from anaus_pl.models.probes import fit_linear_probe, knn_probabilities, pooled

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Classification(DownstreamKind):
    name = "classification"
    heads = ("linear",)
    protocols = ("finetune", "linear", "knn")
    frozen_protocols = {
        "linear": "logistic regression on standardised pooled last-stage features",
        "knn": "cosine kNN (weighted vote, T=0.07) on pooled last-stage features",
    }
    metrics = CLASSIFICATION_METRICS
    headline = "accuracy"
    stratify = True

    def prepare(
        self, layout: Layout, refs: list[SampleRef], task: TaskOptions
    ) -> tuple[list[SampleRef], LoadedTask, list[str]]:
        data = load_task(layout, refs, task.image_size, labels=True, description=task.name)
        return refs, data, list(layout.class_names)

    def build_head(self, encoder: StagedEncoder, options: Mapping[str, Any]) -> nn.Module:
        return Classifier(encoder, options["num_classes"], options.get("dropout", 0.0))

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch["image"]), batch["label"])

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return model(images).softmax(1)

    def validation_scores(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (model(batch["image"]).argmax(1) == batch["label"]).float()

    def frozen_predict(
        self,
        protocol: str,
        features: list[torch.Tensor],
        data: LoadedTask,
        train: np.ndarray,
        test: np.ndarray,
        task: TaskOptions,
        num_classes: int,
        seed: int,
    ) -> torch.Tensor:
        vectors, labels = pooled(features), torch.from_numpy(data.labels)
        train_t, test_t = torch.from_numpy(train), torch.from_numpy(test)
        if protocol == "knn":
            return knn_probabilities(vectors[train_t], labels[train_t], vectors[test_t], num_classes, task.knn_k)
        if protocol == "linear":
            probe = fit_linear_probe(vectors[train_t], labels[train_t], num_classes, task.probe_weight_decay)
            return probe(vectors[test_t]).softmax(1)
        raise ValueError(f"classification has no frozen protocol {protocol!r}; use linear or knn")

    def score(
        self, prediction: torch.Tensor, index: np.ndarray, data: LoadedTask, class_names: list[str]
    ) -> dict[str, Any]:
        targets = torch.from_numpy(data.labels[index])
        return {
            "metrics": classification_metrics(prediction, targets, class_names),
            "class_names": class_names,
            "predictions": [
                {"source": data.sources[i], "label": int(t), "predicted": int(p.argmax())}
                for i, t, p in zip(index, targets, prediction)
            ],
        }

    def summarise(self, records: list[dict]) -> dict[str, Any]:
        classes = records[0]["class_names"]
        pooled_confusion = np.sum([r["metrics"]["confusion"] for r in records], axis=0)
        return {
            "class_names": classes,
            "pooled_confusion": pooled_confusion.tolist(),
            "pooled_accuracy": float(np.trace(pooled_confusion) / max(1, pooled_confusion.sum())),
            "mean_per_class": {
                name: {c: float(np.mean([r["metrics"][name][c] for r in records])) for c in classes}
                for name in ("precision", "recall")
            },
        }

    def extra_columns(self, entry: dict) -> dict[str, str]:
        return {"pooled acc.": f"{100 * entry['pooled_accuracy']:.1f}"}

    def figures(self, task: str, protocol: str, inits: dict[str, dict], results: Path, count: int) -> dict[str, Figure]:
        from anaus_pl.evaluation.figures import confusion_figure

        return {"confusion": confusion_figure(f"{task} ({protocol})", inits)}
