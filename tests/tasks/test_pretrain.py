"""The pretrain LightningModule end to end on a tiny synthetic store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from anaus_pl.cli import main as cli_main
from anaus_pl.data.datamodules.pretrain import PretrainDataModule
from anaus_pl.data.views import ViewConfig
from anaus_pl.evaluation.report import schedule_note
from anaus_pl.models.region_embedder import RegionEmbedder
from anaus_pl.tasks.pretrain import PretrainTask

TINY = dict(
    scales=["c5", "p3"],
    fpn_channels=16,
    projector_hidden=32,
    embedding_dim=16,
    predictor_hidden=32,
    regions_per_view=4,
    log_images_every_n_steps=0,
    batch_size=4,
    image_size=64,
    classes=[],
)


def linked(data: PretrainDataModule) -> dict:
    """What LightningCLI links from the data module into the task (see ``AnausCLI.add_arguments_to_parser``)."""
    return {"batch_size": data.batch_size, "image_size": data.views.image_size, "classes": data.classes}


def _datamodule(store: Path, batch_size: int = 4, image_size: int = 64, **kwargs) -> PretrainDataModule:
    views = ViewConfig(image_size=image_size, core_size=32)
    return PretrainDataModule(str(store), batch_size=batch_size, num_workers=0, views=views, **kwargs)


def _batch(store: Path, batch_size: int = 4, **kwargs) -> dict[str, torch.Tensor]:
    dm = _datamodule(store, batch_size, **kwargs)
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def test_same_region_ids_reach_both_views_and_both_networks(
    synthetic_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_everything(0)
    task = PretrainTask(**TINY)
    batch = _batch(synthetic_store)
    seen: list[tuple[int, torch.Tensor]] = []  # (images, ids) per scale, in call order
    original = RegionEmbedder.forward

    def spy(self, images, regions):
        seen.extend((images.shape[0], ids.clone()) for _, ids in regions.values())
        return original(self, images, regions)

    monkeypatch.setattr(RegionEmbedder, "forward", spy)
    out = task.compute_losses(batch)
    b = batch["view1"].shape[0]
    # views: online then target, each over [view1; view2] for 2 scales; core: online then target, 2 scales
    view_calls, core_calls = seen[:4], seen[4:]
    for scale in range(2):
        online, target = view_calls[scale][1], view_calls[2 + scale][1]
        assert torch.equal(online, target) and torch.equal(online[:b], online[b:])
        assert torch.equal(core_calls[scale][1], core_calls[2 + scale][1])
    assert set(out) >= {
        "align/c5",
        "align/p3",
        "core/c5",
        "core/p3",
        "loss",
        "positive_similarity",
        "negative_similarity",
        "regions_per_image",
    }
    assert torch.isfinite(out["loss"])


def test_ablation_switches_and_mask_sources(synthetic_store: Path) -> None:
    seed_everything(1)
    only_core = PretrainTask(**TINY, use_alignment=False).compute_losses(_batch(synthetic_store, mask_source="none"))
    assert "align/c5" not in only_core and "core/c5" in only_core
    grid = PretrainTask(**TINY, use_core=False).compute_losses(_batch(synthetic_store, mask_source="grid"))
    assert "core/c5" not in grid and grid["regions_per_image"] > 1
    with pytest.raises(ValueError, match="both false"):
        PretrainTask(**TINY, use_alignment=False, use_core=False)
    byol = PretrainTask(**TINY, use_core=False, alignment_loss="byol").compute_losses(
        _batch(synthetic_store, mask_source="none")
    )
    assert 0 <= byol["align/c5"] <= 4 and byol["regions_per_image"] == 1 and "negative_similarity" not in byol
    with pytest.raises(ValueError, match="alignment_loss"):
        PretrainTask(**TINY, alignment_loss="simclr")


class _CountEMA(PretrainTask):
    updates = 0

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        update = self.ema.update

        def counted(*args, **kw) -> float:
            type(self).updates += 1
            return update(*args, **kw)

        self.ema.update = counted  # type: ignore[method-assign]


@pytest.mark.slow
def test_fit_lowers_the_loss_updates_ema_once_per_step_and_exports(synthetic_store: Path, tmp_path: Path) -> None:
    seed_everything(0)
    data = _datamodule(synthetic_store, batch_size=8, image_size=32)
    task = _CountEMA(
        **{**TINY, **linked(data)},
        optimizer="adamw",
        base_lr=3e-3,
        scale_lr=False,
        warmup_epochs=0.5,
        export_dir=str(tmp_path / "export"),
    )
    losses: list[float] = []

    original_step = task.training_step

    def recording_step(batch, batch_idx):
        loss = original_step(batch, batch_idx)
        losses.append(loss.item())
        return loss

    task.training_step = recording_step  # type: ignore[method-assign]
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=8,
        accumulate_grad_batches=2,
        logger=False,
        enable_progress_bar=False,
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=0, every_n_epochs=8)],
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=data)
    steps = trainer.global_step
    assert _CountEMA.updates == steps == len(losses) // 2
    first, last = sum(losses[:6]) / 6, sum(losses[-6:]) / 6
    assert last < first, (first, last)
    assert task.momentum > 0.99

    for export_dir in (tmp_path / "export", tmp_path / "cli"):
        if export_dir.name == "cli":
            assert cli_main(["export", "--ckpt", str(tmp_path / "ckpt" / "last.ckpt"), "--out", str(export_dir)]) == 0
        resnet = torchvision.models.resnet18()
        resnet.fc = torch.nn.Identity()
        state = torch.load(export_dir / "encoder.pt", weights_only=True)
        resnet.load_state_dict(state, strict=True)
        assert torch.equal(state["conv1.weight"], task.online.encoder.backbone.conv1.weight.detach())
        meta = json.loads((export_dir / "encoder.json").read_text())
        assert meta["arch"] == "resnet18" and meta["input_size"] == 32 and meta["classes"][0] == "thyroid_nodule"


class _StopAt(Callback):
    """Stops the fit after ``step`` optimizer steps: gracefully (as ``max_time`` does) or with an exception."""

    def __init__(self, step: int, raise_error: bool) -> None:
        self.step, self.raise_error = step, raise_error

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            if self.raise_error:
                raise RuntimeError("disk full")
            trainer.should_stop = True


@pytest.mark.parametrize("raise_error", [False, True])
def test_a_fit_cut_short_records_its_steps_and_warns(
    synthetic_store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, raise_error: bool
) -> None:
    seed_everything(0)
    dm = _datamodule(synthetic_store, batch_size=4, image_size=32)
    task = PretrainTask(
        **{**TINY, **linked(dm)}, optimizer="adamw", base_lr=1e-3, scale_lr=False, export_dir=str(tmp_path / "export")
    )
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[_StopAt(2, raise_error)],
        default_root_dir=tmp_path,
    )
    with caplog.at_level("WARNING", logger="anaus_pl.tasks.pretrain"):
        if raise_error:
            with pytest.raises(RuntimeError, match="disk full"):
                trainer.fit(task, datamodule=dm)
        else:
            trainer.fit(task, datamodule=dm)
    meta = json.loads((tmp_path / "export" / "encoder.json").read_text())
    assert (meta["steps_done"], meta["steps_planned"]) == (2, 2 * 32 // 4)
    assert "stopped after 2 of 16 planned steps" in caplog.text
    assert (
        schedule_note(f"encoder:{tmp_path / 'export' / 'encoder.pt'}") == " (**pretraining stopped at step 2 of 16**)"
    )


def test_a_complete_schedule_is_noted_as_such(tmp_path: Path) -> None:
    (tmp_path / "encoder.json").write_text(json.dumps({"arch": "resnet18", "steps_done": 30, "steps_planned": 30}))
    assert schedule_note(f"encoder:{tmp_path}") == " (30/30 steps)"
    assert schedule_note("random") == schedule_note(f"encoder:{tmp_path / 'missing' / 'encoder.pt'}") == ""
