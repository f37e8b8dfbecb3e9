"""bf16-mixed on CPU for the adapt, annotate and pretrain stages: a couple of steps, finite losses, outputs.

CPU autocast to bfloat16 runs the same code path as the GPU presets' ``bf16-mixed`` (matmuls and
convolutions in bf16, reductions and losses in fp32), so dtype mistakes show here without a GPU.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import yaml
from annotate_runs import run_annotate, synthetic_frame, write_config
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from test_adapt import _data as adapt_data
from test_adapt import _task as adapt_task
from test_pretrain import TINY as PRETRAIN_TINY
from test_pretrain import _datamodule as pretrain_data
from test_pretrain import linked

from anaus_pl.data.anatomy_store import AnatomyStore
from anaus_pl.models.lpsam import LPSAMConfig, build_lpsam
from anaus_pl.tasks.adapt import load_lpsam
from anaus_pl.tasks.annotate import AnnotateTask
from anaus_pl.tasks.pretrain import PretrainTask

BF16_TRAINER = dict(
    accelerator="cpu",
    devices=1,
    precision="bf16-mixed",
    max_steps=2,
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    num_sanity_val_steps=0,
)


class _RecordLosses(Callback):
    """Keeps every training step's loss."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))


def _fit(module, datamodule, tmp_path: Path, **trainer_options) -> _RecordLosses:
    record = _RecordLosses()
    callbacks = [record, ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=0)]
    trainer = Trainer(default_root_dir=tmp_path, callbacks=callbacks, **{**BF16_TRAINER, **trainer_options})
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 2 and len(record.losses) == 2
    assert np.isfinite(record.losses).all(), record.losses
    # mixed, not true bf16: the weights (and the optimiser's updates) stay fp32
    assert all(p.dtype == torch.float32 for p in module.parameters())
    return record


def test_adapt_fits_in_bf16_mixed_and_its_checkpoint_loads(tmp_path: Path) -> None:
    seed_everything(0)
    _fit(adapt_task(overlay_images=0), adapt_data(tmp_path, batch_size=4), tmp_path, limit_val_batches=0)
    model = load_lpsam(tmp_path / "ckpt" / "last.ckpt")
    assert model.vocabulary.names == ("cyst", "plaque")


def test_pretrain_fits_in_bf16_mixed_and_exports(synthetic_store: Path, tmp_path: Path) -> None:
    seed_everything(0)
    data = pretrain_data(synthetic_store, batch_size=4, image_size=32)
    task = PretrainTask(
        **{**PRETRAIN_TINY, **linked(data)},
        optimizer="adamw",
        base_lr=1e-3,
        scale_lr=False,
        export_dir=str(tmp_path / "export"),
    )
    _fit(task, data, tmp_path)
    state = torch.load(tmp_path / "export" / "encoder.pt", weights_only=True)
    assert state["conv1.weight"].dtype == torch.float32 and torch.isfinite(state["conv1.weight"]).all()


def _lpsam_checkpoint(path: Path) -> Path:
    config = LPSAMConfig(classes=["lv", "myocardium"], encoder="vit_micro", image_size=64, pretrained=False)
    torch.manual_seed(0)
    model = build_lpsam(config)
    torch.save(
        {
            "hyper_parameters": {"model": asdict(config)},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        path,
    )
    return path


def test_annotate_bf16_autocast_on_cpu_matches_fp32(tmp_path: Path) -> None:
    """``autocast: bf16`` runs on CPU; ``auto`` picks no autocast there (CPU bf16 is rarely faster)."""
    checkpoint = _lpsam_checkpoint(tmp_path / "last.ckpt")
    frames = torch.from_numpy(np.stack([synthetic_frame(64, 64, k, seed=k) for k in range(3)]))
    outputs = {}
    for mode in ("off", "bf16", "auto"):
        task = AnnotateTask(str(checkpoint), autocast=mode, predictor_loader="anaus_pl.tasks.adapt:load_lpsam")
        task.setup("predict")
        outputs[mode] = task(frames)
    assert AnnotateTask(str(checkpoint), autocast="auto").autocast_dtype() is None  # CPU
    probabilities, confidence = outputs["bf16"]
    assert probabilities.dtype == confidence.dtype == torch.float32 and probabilities.shape == (3, 2, 64, 64)
    assert torch.isfinite(probabilities).all() and torch.isfinite(confidence).all()
    # bf16 keeps 8 mantissa bits: probabilities agree with fp32 to about 1e-2, and differ from it at all
    assert (probabilities - outputs["off"][0]).abs().max() < 5e-2
    assert not torch.equal(probabilities, outputs["off"][0]) and torch.equal(outputs["auto"][0], outputs["off"][0])


def test_annotate_command_writes_the_store_under_bf16_autocast(annotate_inputs: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "anatomy.h5"
    config_path = write_config(
        tmp_path / "cfg.yaml",
        annotate_inputs,
        store_path,
        _lpsam_checkpoint(tmp_path / "last.ckpt"),
        loader="anaus_pl.tasks.adapt:load_lpsam",
    )
    config = yaml.safe_load(config_path.read_text())
    config["model"]["init_args"]["autocast"] = "bf16"
    config_path.write_text(yaml.safe_dump(config))
    run_annotate(config_path)
    store = AnatomyStore(store_path)
    assert len(store) > 0 and store.classes == ["lv", "myocardium"]
    assert np.isfinite(store[0]["scores"]).all()


def test_autocast_is_active_inside_the_training_step(synthetic_store: Path, tmp_path: Path) -> None:
    """The loss the pretrain step returns is fp32 although its convolutions ran in bf16."""
    seed_everything(0)
    data = pretrain_data(synthetic_store, batch_size=4, image_size=32)
    task = PretrainTask(
        **{**PRETRAIN_TINY, **linked(data)},
        optimizer="adamw",
        base_lr=1e-3,
        scale_lr=False,
        export_dir=str(tmp_path / "export"),
    )
    conv_outputs: list[torch.dtype] = []
    task.online.encoder.backbone.conv1.register_forward_hook(
        lambda module, args, output: conv_outputs.append(output.dtype)
    )
    losses: list[torch.dtype] = []
    original = task.compute_losses

    def spy(batch, generator=None):
        out = original(batch, generator)
        losses.append(out["loss"].dtype)
        return out

    task.compute_losses = spy  # type: ignore[method-assign]
    trainer = Trainer(default_root_dir=tmp_path, **{**BF16_TRAINER, "max_steps": 1})
    trainer.fit(task, datamodule=data)
    assert set(conv_outputs) == {torch.bfloat16} and losses == [torch.float32]
