"""A pretraining monitor: kNN and linear-probe accuracy of the frozen backbone on a labelled held set.

Every ``every_n_epochs`` epochs (and once more at the end of fit, before the
encoder is exported) the callback copies the backbone, extracts frozen
features of a labelled classification set (any registered layout; by default
a phantom one), and scores a cosine kNN and a logistic-regression probe by
grouped, stratified cross-validation on those features. The accuracies go to
the logger (``monitor/knn_accuracy``, ``monitor/linear_accuracy``) and, through
:func:`monitor_values`, into ``encoder.json``.

The run's random streams are untouched: the states of ``random``, numpy and
torch (CPU and CUDA) are saved before and restored after each probe, the
backbone is copied (its batch-norm statistics never see the held set), and
nothing is drawn from a data loader.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from anaus_pl.data.datamodules.finetune import LoadedTask, load_task
from anaus_pl.data.folds import make_folds, subsample
from anaus_pl.data.layouts import get_layout
from anaus_pl.models.downstream import StagedEncoder
from anaus_pl.models.export import DEFAULT_MEAN, DEFAULT_STD
from anaus_pl.models.probes import extract_features, fit_linear_probe, knn_probabilities, pooled
from anaus_pl.preflight import require_folder

log = logging.getLogger("anaus_pl.monitor")


@contextmanager
def preserved_random_state() -> Iterator[None]:
    """Run a block without moving the global random streams of ``random``, numpy and torch (CPU and CUDA)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def probe_accuracies(
    features: torch.Tensor, labels: np.ndarray, folds: list[np.ndarray], num_classes: int, k: int, weight_decay: float
) -> dict[str, float]:
    """Mean test-fold accuracy of cosine kNN and of a linear probe on pooled ``features`` ``(N, C)``."""
    target = torch.from_numpy(labels)
    scores: dict[str, list[float]] = {"knn_accuracy": [], "linear_accuracy": []}
    for test in folds:
        train = np.setdiff1d(np.arange(len(labels)), test)
        knn = knn_probabilities(features[train], target[train], features[test], num_classes, k)
        probe = fit_linear_probe(features[train], target[train], num_classes, weight_decay)
        scores["knn_accuracy"].append(float((knn.argmax(1) == target[test]).float().mean()))
        scores["linear_accuracy"].append(float((probe(features[test]).argmax(1) == target[test]).float().mean()))
    return {name: float(np.mean(values)) for name, values in scores.items()}


class ProbeMonitor(Callback):
    """Logs frozen-feature kNN and linear-probe accuracy on a labelled held set while pretraining.

    Args:
        layout: a classification layout name (``busi``, ``pocus``, ``folder``, ...).
        root: the held set's root folder.
        layout_options: reader options.
        every_n_epochs: probe after every this many training epochs (and at the end of fit).
        image_size: letterboxed input size of the held images (default: the module's ``hparams.image_size``,
            pretraining's view size).
        n_folds: grouped, stratified folds the probes are scored over.
        knn_k: neighbours of the kNN probe.
        weight_decay: L2 penalty of the logistic-regression probe.
        backbone: attribute path of the backbone on the LightningModule (``online.encoder.backbone``
            for :class:`~anaus_pl.tasks.pretrain.PretrainTask`).
        mean, std: input normalisation of the backbone (default: the module's ``hparams.mean`` / ``hparams.std``).
        max_samples: probe at most this many held images (a seeded, class-stratified subset), capping its cost.
        seed: fold and subset seed.
    """

    def __init__(
        self,
        layout: str = "busi",
        root: str = "data/phantom/busi",
        layout_options: dict | None = None,
        every_n_epochs: int = 1,
        image_size: int | None = None,
        n_folds: int = 5,
        knn_k: int = 20,
        weight_decay: float = 1e-3,
        backbone: str = "online.encoder.backbone",
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        max_samples: int | None = 400,
        seed: int = 0,
    ) -> None:
        if every_n_epochs < 1 or n_folds < 2:
            raise ValueError(
                f"ProbeMonitor: need every_n_epochs >= 1 and n_folds >= 2, got {every_n_epochs}, {n_folds}"
            )
        self.layout, self.root, self.layout_options = layout, root, dict(layout_options or {})
        self.every_n_epochs, self.image_size, self.n_folds = every_n_epochs, image_size, n_folds
        self.knn_k, self.weight_decay, self.backbone, self.mean, self.std = knn_k, weight_decay, backbone, mean, std
        self.seed, self.max_samples = seed, max_samples
        self.last: dict[str, float] = {}
        self._probed_step = -1
        self._data: LoadedTask | None = None
        self._folds: list[np.ndarray] = []
        self._num_classes = 2

    @staticmethod
    def check_config(init_args: dict) -> None:
        """Pre-flight (:mod:`anaus_pl.preflight`): the held set's folder exists."""
        require_folder(init_args["root"], "the root of trainer.callbacks ProbeMonitor")

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Decode the held set once (a clear error when the layout has no labels)."""
        if self._data is not None or not trainer.is_global_zero:
            return
        layout = get_layout(self.layout, self.root, **self.layout_options)
        refs = layout.index()
        if not refs or any(ref.label is None for ref in refs):
            raise ValueError(
                f"ProbeMonitor: layout {self.layout!r} at {self.root} gave {len(refs)} samples, not all "
                "labelled; give a classification layout (busi, pocus, folder, ...) with its root"
            )
        if self.max_samples is not None and len(refs) > self.max_samples:
            refs = subsample(refs, self.max_samples / len(refs), self.seed, stratify=True)
        size = self.image_size or getattr(pl_module, "hparams", {}).get("image_size")
        if size is None:
            raise ValueError(
                f"ProbeMonitor: {type(pl_module).__name__} has no hparams.image_size; give the monitor's image_size"
            )
        self._data = load_task(layout, refs, size, labels=True, description="monitor held set")
        self._num_classes = max(2, len(layout.class_names))
        folds = make_folds(refs, self.n_folds, self.seed, stratify=True)
        self._folds = [self._data.index_of(fold) for fold in folds]

    def _probe(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or self._data is None or self._probed_step == trainer.global_step:
            return
        started = time.perf_counter()
        with preserved_random_state():
            backbone = copy.deepcopy(attrgetter(self.backbone)(pl_module)).float().eval()
            hparams = getattr(pl_module, "hparams", {})
            mean, std = self.mean or hparams.get("mean", DEFAULT_MEAN), self.std or hparams.get("std", DEFAULT_STD)
            features = pooled(extract_features(StagedEncoder(backbone, tuple(mean), tuple(std)), self._data.images))
            self.last = probe_accuracies(
                features, self._data.labels, self._folds, self._num_classes, self.knn_k, self.weight_decay
            )
        self.last["epoch"] = trainer.current_epoch
        self._probed_step = trainer.global_step
        if trainer.logger is not None:
            trainer.logger.log_metrics(
                {f"monitor/{k}": v for k, v in self.last.items() if k != "epoch"}, step=trainer.global_step
            )
        log.info(
            "monitor (epoch %d): kNN %.3f, linear %.3f (%.1f s)",
            trainer.current_epoch,
            self.last["knn_accuracy"],
            self.last["linear_accuracy"],
            time.perf_counter() - started,
        )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._probe(trainer, pl_module)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A last probe of the final weights (callbacks' ``on_fit_end`` runs before the task exports the encoder)."""
        self._probe(trainer, pl_module)


def monitor_values(trainer: Trainer | None) -> dict[str, float]:
    """The last values of the trainer's :class:`ProbeMonitor` (empty without one), for ``encoder.json``."""
    monitors = [cb for cb in (trainer.callbacks if trainer is not None else []) if isinstance(cb, ProbeMonitor)]
    return dict(monitors[0].last) if monitors else {}
