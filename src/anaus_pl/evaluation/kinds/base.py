"""The interface every downstream task kind implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from anaus_pl.data.datamodules.finetune import LoadedTask
from anaus_pl.data.layouts.base import Layout, SampleRef
from anaus_pl.models.downstream import StagedEncoder

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class TaskOptions(Protocol):
    """The settings of one task a kind reads (``anaus_pl.evaluation.config.TaskConfig`` has them all)."""

    name: str
    image_size: int
    batch_size: int
    foreground: list[str]
    empty_masks: str
    fpn_channels: int
    foreground_prior: float | None
    knn_k: int
    probe_weight_decay: float
    probe_epochs: int


class DownstreamKind(ABC):
    """One kind of downstream task (classification, segmentation, ...).

    Attributes:
        name: the ``kind`` value of task configs.
        heads: fine-tuning heads it accepts (the first is the default).
        protocols: protocols it supports (``finetune`` and frozen ones such as ``linear``, ``knn``).
        frozen_protocols: what each frozen protocol fits on the frozen features (for reports).
        metrics: scalar metrics of a fold, in report order; ``headline`` is the one verdicts use.
        lower_is_better: metrics where smaller is better (shown unscaled, e.g. distances in pixels).
        stratify: whether folds, inner splits and label subsets keep the class shares.
    """

    name: str
    heads: tuple[str, ...]
    protocols: tuple[str, ...]
    frozen_protocols: dict[str, str]
    metrics: tuple[str, ...]
    headline: str
    lower_is_better: frozenset[str] = frozenset()
    stratify: bool = False

    @property
    def monitor(self) -> str:
        """The validation metric that selects the fine-tuned epoch (higher is better)."""
        return f"val/{self.headline}"

    def higher_is_better(self, metric: str | None = None) -> bool:
        """Whether larger values of ``metric`` (default: the headline) are better."""
        return (metric or self.headline) not in self.lower_is_better

    # -- data ---------------------------------------------------------------------------------------
    @abstractmethod
    def prepare(
        self, layout: Layout, refs: list[SampleRef], task: TaskOptions
    ) -> tuple[list[SampleRef], LoadedTask, list[str]]:
        """Decode the task's samples; returns the refs kept, their arrays and the class names."""

    # -- fine-tuning (used by :class:`anaus_pl.tasks.finetune.FinetuneModule`) ------------------------
    @abstractmethod
    def build_head(self, encoder: StagedEncoder, options: Mapping[str, Any]) -> nn.Module:
        """The trainable model on ``encoder``; ``options`` are the fine-tuning module's hyperparameters
        (``head``, ``num_classes``, ``fpn_channels``, ``image_size``, ``dropout``, ``foreground_prior``, ...)."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of one batch."""

    @abstractmethod
    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Test predictions of a batch (class probabilities, binary masks, ...)."""

    @abstractmethod
    def validation_scores(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-image values of the headline metric (averaged into the selection metric)."""

    # -- frozen protocols ----------------------------------------------------------------------------
    @abstractmethod
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
        """Predictions for ``test`` from a probe fitted on the frozen ``features`` of ``train`` (same format as ``predict``)."""

    # -- scoring and reporting -----------------------------------------------------------------------
    @abstractmethod
    def score(
        self, prediction: torch.Tensor, index: np.ndarray, data: LoadedTask, class_names: list[str]
    ) -> dict[str, Any]:
        """A fold's record fields: ``metrics`` (scalars named in :attr:`metrics`, plus extras) and per-sample details."""

    def save_cases(  # noqa: B027 (an optional hook: kinds without case figures keep the no-op)
        self,
        folder: Path,
        stem: str,
        data: LoadedTask,
        index: np.ndarray,
        prediction: torch.Tensor,
        record: dict,
        count: int,
    ) -> None:
        """Keep a few test cases for the report's figures (nothing by default)."""

    def summarise(self, records: list[dict]) -> dict[str, Any]:
        """Report fields pooled over a protocol's records beyond mean and std (nothing by default)."""
        return {}

    def extra_columns(self, entry: dict) -> dict[str, str]:
        """Extra report-table cells of an init's summary (none by default)."""
        return {}

    def figures(self, task: str, protocol: str, inits: dict[str, dict], results: Path, count: int) -> dict[str, Figure]:
        """Kind-specific figures of a task and protocol, by file stem (none by default)."""
        return {}
