"""The pretraining monitor: logs held-set probe accuracy, fills encoder.json, and leaves the run's random streams alone."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from anaus_pl.data.layouts.base import LAYOUTS, Layout, Sample, SampleRef, register
from anaus_pl.models.export import build_backbone
from anaus_pl.tasks import probe_monitor
from anaus_pl.tasks.probe_monitor import ProbeMonitor, monitor_values, preserved_random_state


class HeldBrightness(Layout):
    """Two classes told apart by brightness, two frames per video."""

    name = "test-monitor-held"
    task = "classification"
    class_names = ("dark", "bright")

    def index(self) -> list[SampleRef]:
        return [SampleRef(f"{self.root}/v{v}.avi#{f}", label=v % 2) for v in range(10) for f in range(2)]

    def load(self, ref: SampleRef) -> Sample:
        v, f = ref.source.rsplit("/v", 1)[1].replace(".avi", "").split("#")
        image = np.random.default_rng(int(v) * 7 + int(f)).normal(60 + 100 * (int(v) % 2), 10, (40, 40))
        return Sample(image.clip(0, 255).astype(np.uint8), ref.source, label=ref.label)


if HeldBrightness.name not in LAYOUTS:
    register(HeldBrightness)


class TinyTask(LightningModule):
    """A resnet18 backbone under a dropout head: its loss depends on the global random streams."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = build_backbone("resnet18")
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(512, 1))

    def training_step(self, batch, batch_idx):
        (images,) = batch
        loss = self.head(self.backbone(images.expand(-1, 3, -1, -1))).tanh().square().mean() + 0 * random.random()
        self.losses.append(loss.item())
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)


def _fit(tmp_path: Path, callbacks: list) -> list[float]:
    seed_everything(0, verbose=False)
    module = TinyTask()
    module.losses = []
    data = DataLoader(TensorDataset(torch.rand(12, 1, 32, 32)), batch_size=4, shuffle=True)
    trainer = Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=CSVLogger(tmp_path),
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data)
    return module.losses


@pytest.mark.slow
def test_loss_curve_is_the_same_with_and_without_the_monitor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = probe_monitor.probe_accuracies

    def greedy(*args, **kwargs):  # a probe that draws from every stream must still leave them as they were
        random.random(), np.random.rand(), torch.rand(3)
        return real(*args, **kwargs)

    monkeypatch.setattr(probe_monitor, "probe_accuracies", greedy)
    monitor = ProbeMonitor(
        layout=HeldBrightness.name,
        root=str(tmp_path),
        every_n_epochs=1,
        image_size=32,
        n_folds=2,
        knn_k=3,
        backbone="backbone",
    )
    plain = _fit(tmp_path / "plain", [])
    monitored = _fit(tmp_path / "monitored", [monitor])
    assert len(plain) == 9 and all(np.isfinite(plain)) and plain == monitored
    assert set(monitor.last) == {"knn_accuracy", "linear_accuracy", "epoch"} and monitor.last["knn_accuracy"] > 0.9
    metrics = (next((tmp_path / "monitored").rglob("metrics.csv"))).read_text()
    assert "monitor/knn_accuracy" in metrics and "monitor/linear_accuracy" in metrics


def test_held_images_take_the_module_image_size_unless_given(tmp_path: Path) -> None:
    trainer = Trainer(accelerator="cpu", logger=False)
    module = TinyTask()
    module.save_hyperparameters({"image_size": 48})
    for given, expected in ((None, 48), (32, 32)):
        monitor = ProbeMonitor(layout=HeldBrightness.name, root=str(tmp_path), image_size=given, n_folds=2)
        monitor.setup(trainer, module, "fit")
        assert monitor._data.images.shape[-2:] == (expected, expected)
    with pytest.raises(ValueError, match="give the monitor's image_size"):
        ProbeMonitor(layout=HeldBrightness.name, root=str(tmp_path)).setup(trainer, TinyTask(), "fit")


def test_preserved_random_state_restores_every_stream() -> None:
    seed_everything(3, verbose=False)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(3, verbose=False)
    with preserved_random_state():
        random.random(), np.random.rand(), torch.rand(5)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_monitor_values_and_clear_errors(tmp_path: Path) -> None:
    assert monitor_values(None) == {}
    with pytest.raises(ValueError, match="every_n_epochs"):
        ProbeMonitor(every_n_epochs=0)
    monitor = ProbeMonitor(root=str(tmp_path))
    trainer = Trainer(accelerator="cpu", logger=False, callbacks=[monitor])
    monitor.last = {"knn_accuracy": 0.5}
    assert monitor_values(trainer) == {"knn_accuracy": 0.5}
