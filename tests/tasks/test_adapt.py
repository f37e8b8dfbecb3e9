"""The adapt stage end to end on synthetic two-class pairs (tiny ViT, CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from synthetic_layout import make_scene

from anaus_pl.data.datamodules.adapt import AdaptDataModule, PairAugment, PairSource, split_by_patient
from anaus_pl.data.layouts import SampleRef
from anaus_pl.data.letterbox import letterbox
from anaus_pl.models.lpsam import LPSAMConfig
from anaus_pl.models.prompt_sampling import sample_prompts
from anaus_pl.tasks.adapt import AdaptTask, load_lpsam

SIZE = 64
TINY = dict(
    encoder="vit_micro",
    image_size=SIZE,
    pretrained=False,
    cnn_branch=True,
    cnn_width=16,
    prompt_mlp_dim=64,
    prompt_rounds=2,
)


def _data(root: Path, batch_size: int = 8) -> AdaptDataModule:
    return AdaptDataModule(
        [PairSource("synthetic_pairs", str(root))], image_size=SIZE, batch_size=batch_size, augment=PairAugment(p=0.0)
    )


def _task(**overrides) -> AdaptTask:
    options = dict(
        model=LPSAMConfig(**TINY),
        classes=["cyst", "plaque"],  # the synthetic pairs' vocabulary (LightningCLI links data.classes)
        adapter_epochs=2,
        adapter_trainable=("image_encoder", "adapters", "prompt_encoder", "mask_decoder"),
        adapter_lr=3e-3,
        prompt_lr=3e-3,
        overlay_images=2,
    )
    options.update(overrides)
    return AdaptTask(**options)


def _dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    return 2 * (predicted & truth).sum() / max(1, predicted.sum() + truth.sum())


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared CPU, extra OpenMP threads spin against other jobs and run 5x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_two_phase_fit_learns_each_class_and_checkpoint_rebuilds_alone(tmp_path, one_thread) -> None:
    seed_everything(0)
    data = _data(tmp_path)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = Trainer(
        max_epochs=60,
        accelerator="cpu",
        logger=TensorBoardLogger(tmp_path, name="adapt"),
        callbacks=[checkpoints],
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        check_val_every_n_epoch=20,
        num_sanity_val_steps=0,
    )
    # one epoch of the prompted phase, then about 295 steps of the latent phase with the whole (tiny) network
    # learning; the plaque (a thin bright bar) separates from the cyst only after ~150 steps. The tiny problem is
    # seed-sensitive: with the paper's phase-1 loss (no IoU MSE) seed 0 needed 60 epochs (40 left the cyst unlearnt),
    # and seed 2 still leaves the plaque at Dice ~0.1 after 60.
    task = _task(
        model=LPSAMConfig(**{**TINY, "cnn_branch": False}),
        adapter_epochs=1,
        adapter_lr=5e-3,
        prompt_lr=5e-3,
        dice_weight=0.5,
        prompt_trainable=("image_encoder", "adapters", "mask_decoder", "prompt_engine"),
    )
    trainer.fit(task, datamodule=data)
    model = load_lpsam(tmp_path / "ckpt" / "last.ckpt")
    assert model.vocabulary.names == ("cyst", "plaque") and model.image_size == SIZE and not model.training

    scenes = [make_scene(1000 + i) for i in range(8)]
    images = torch.stack([torch.from_numpy(letterbox(img, SIZE)[0]).float().div(255)[None] for img, _ in scenes])
    labels = [letterbox(mask, SIZE, nearest=True)[0] for _, mask in scenes]
    probabilities, iou = model.predict(images)
    assert probabilities.shape == (8, 2, SIZE, SIZE) and iou.shape == (8, 2)
    for k in (0, 1):
        own = [
            _dice(probabilities[i, k].numpy() > 0.5, labels[i] == k + 1) for i in range(8) if (labels[i] == k + 1).any()
        ]
        other = [
            _dice(probabilities[i, k].numpy() > 0.5, labels[i] == 2 - k) for i in range(8) if (labels[i] == 2 - k).any()
        ]
        assert np.mean(own) > 0.5 and np.mean(own) > np.mean(other) + 0.3, (k, own, other)
    assert trainer.callback_metrics["val/dice_mean"] > 0.5


def test_patient_split_keeps_patients_together() -> None:
    refs = [SampleRef(source=f"f{i}", patient=f"p{i // 3}") for i in range(30)]
    train, val = split_by_patient(refs, 0.2, seed=1)
    assert sorted(train + val) == list(range(30)) and len(val) == 6
    assert not {refs[i].patient for i in train} & {refs[i].patient for i in val}


def test_datamodule_letterboxes_and_marks_annotated_classes(tmp_path) -> None:
    data = _data(tmp_path, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (4, 1, SIZE, SIZE) and batch["image"].dtype == torch.float32
    assert 0 <= batch["image"].min() and batch["image"].max() <= 1
    assert batch["label"].shape == (4, SIZE, SIZE) and set(batch["label"].unique().tolist()) <= {0, 1, 2}
    assert batch["annotated"].all() and data.vocabulary.names == ("cyst", "plaque")


def test_prompts_lie_on_the_structure() -> None:
    masks = torch.zeros(2, 20, 30, dtype=torch.bool)
    masks[0, 5:10, 3:8] = True
    masks[1, 0:20, 29] = True
    points, labels, boxes = sample_prompts(masks, box_jitter=0.0, generator=torch.Generator().manual_seed(0))
    for n in range(2):
        x, y = points[n, 0].long().tolist()
        assert masks[n, y, x]
    torch.testing.assert_close(boxes, torch.tensor([[3.0, 5, 7, 9], [29, 0, 29, 19]]))
    assert labels.eq(1).all()


def test_unknown_trainable_part_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown parts"):
        AdaptTask(model=LPSAMConfig(**TINY), classes=["cyst", "plaque"], prompt_trainable=("decoder",))


DDP_SCRIPT = """
import sys
from lightning.pytorch import Trainer, seed_everything
import synthetic_layout  # noqa: F401
from anaus_pl.data.datamodules.adapt import AdaptDataModule, PairAugment, PairSource
from anaus_pl.models.lpsam import LPSAMConfig
from anaus_pl.tasks.adapt import AdaptTask

seed_everything(0)
data = AdaptDataModule([PairSource("synthetic_pairs", sys.argv[1], limit=16)], image_size=64, batch_size=4,
                       augment=PairAugment(p=0.0))
task = AdaptTask(model=LPSAMConfig(**{tiny}), classes=data.classes, adapter_epochs=1)
trainer = Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true",
                  logger=False, enable_checkpointing=False, enable_progress_bar=False)
trainer.fit(task, datamodule=data)
print("DDP-OK", trainer.world_size, trainer.global_step)
"""


@pytest.mark.slow
@pytest.mark.ddp
def test_two_process_gloo_fit(tmp_path) -> None:
    script = tmp_path / "ddp_fit.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT.format(tiny=repr(TINY))))
    here = Path(__file__).parent
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(here), str(here.parents[1] / "src"), os.environ.get("PYTHONPATH", "")]),
    )
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DDP-OK 2" in result.stdout


def test_absent_classes_are_supervised_as_empty_unless_declared_unlabeled(tmp_path) -> None:
    everything = AdaptDataModule([PairSource("synthetic_pairs", str(tmp_path))], image_size=SIZE)
    everything.setup()
    assert everything.train_set[0]["annotated"].tolist() == [True, True]
    partial = AdaptDataModule([PairSource("synthetic_pairs", str(tmp_path), unlabeled=["plaque"])], image_size=SIZE)
    partial.setup()
    assert partial.train_set[0]["annotated"].tolist() == [True, False]
    with pytest.raises(ValueError, match="not in the vocabulary"):
        AdaptDataModule([PairSource("synthetic_pairs", str(tmp_path), unlabeled=["lv"])], image_size=SIZE)


@pytest.mark.parametrize("adapter_iou_loss", [False, True])
def test_phase_one_iou_head_loss_reaches_the_adapters_only_when_asked(tmp_path, monkeypatch, adapter_iou_loss) -> None:
    """The paper's phase-1 loss is (1 - a) BCE + a Dice: with the mask loss zeroed, nothing may reach the adapters."""
    seed_everything(0)
    data = _data(tmp_path, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    task = _task(
        model=LPSAMConfig(**TINY, classes=list(data.vocabulary.names)),
        adapter_trainable=("adapters",),
        adapter_iou_loss=adapter_iou_loss,
    )
    task.configure_model()
    monkeypatch.setattr(task, "log", lambda *args, **kwargs: None)
    monkeypatch.setattr(task, "log_dict", lambda *args, **kwargs: None)
    monkeypatch.setattr("anaus_pl.tasks.adapt.bce_dice_loss", lambda logits, targets, weight: logits.sum() * 0.0)
    loss = task.training_step(batch, 0)
    grads = torch.autograd.grad(loss, list(task.model.adapters.parameters()), allow_unused=True)
    norm = sum(float(g.norm()) for g in grads if g is not None)
    assert (norm > 0) == adapter_iou_loss, norm
