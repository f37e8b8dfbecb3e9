import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer

from anaus_pl.data.datamodules.finetune import FoldDataModule, LoadedTask
from anaus_pl.evaluation.kinds import get_kind
from anaus_pl.evaluation.kinds.segmentation import instance_targets
from anaus_pl.models.downstream import BackboneSpec, StagedEncoder, build_init
from anaus_pl.tasks.finetune import FinetuneModule


def _disks(n: int, size: int) -> LoadedTask:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 <= (size // 6) ** 2
    images = (rng.normal(50, 10, masks.shape) + 150 * masks).clip(0, 255).astype(np.uint8)
    return LoadedTask([f"{i}.png" for i in range(n)], images, masks, None, np.full((n, 2), size))


def test_instance_targets_one_box_per_component() -> None:
    mask = torch.zeros(16, 16)
    mask[1:4, 1:5] = 1
    mask[10:14, 8:12] = 1
    targets = instance_targets(mask)
    assert targets["boxes"].tolist() == [[1, 1, 5, 4], [8, 10, 12, 14]]
    assert targets["masks"].shape == (2, 16, 16) and targets["labels"].tolist() == [1, 1]
    assert instance_targets(torch.zeros(8, 8))["boxes"].shape == (0, 4)


def test_finetune_modes_freeze_the_right_stages() -> None:
    backbone, *_ = build_init("random", BackboneSpec())
    encoder = StagedEncoder(backbone)
    encoder.set_trainable("finetune", 3)
    trainable = [any(p.requires_grad for p in block.parameters()) for block in (encoder.stem, *encoder.stages)]
    assert trainable == [False, False, True, True, True]
    encoder.train()
    assert not encoder.stages[0].training and encoder.stages[1].training  # frozen BN statistics stay put
    encoder.set_trainable("linear", 0)
    assert not any(p.requires_grad for p in encoder.parameters())


@pytest.mark.slow
def test_mask_rcnn_segmentation_trains_and_predicts_masks() -> None:
    """The paper's Mask R-CNN protocol runs (tiny sizes): SGD steps, then binary masks of the test images."""
    torch.manual_seed(0)
    data = _disks(8, 64)
    module = FinetuneModule(
        get_kind("segmentation"),
        head="maskrcnn",
        optimizer="sgd",
        lr=0.01,
        image_size=64,
        fpn_channels=32,
        mode="finetune",
    )
    datamodule = FoldDataModule(data, np.arange(6), np.arange(6, 8), np.arange(6, 8), batch_size=3)
    trainer = Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule)
    assert np.isfinite(trainer.callback_metrics["train/loss"].item())
    assert 0.0 <= trainer.callback_metrics["val/dice"].item() <= 1.0
    trainer.test(module, datamodule, verbose=False)
    predictions = torch.cat(module.test_outputs["prediction"])
    assert predictions.shape == (2, 64, 64) and predictions.dtype == torch.bool
    assert isinstance(module.model, torch.nn.Module) and type(module.model).__name__ == "MaskRCNN"


@pytest.mark.slow
def test_fpn_segmenter_loss_falls_on_a_tiny_problem() -> None:
    torch.manual_seed(0)
    data = _disks(8, 32)
    module = FinetuneModule(get_kind("segmentation"), head="fpn", image_size=32, fpn_channels=16, lr=1e-3, mode="full")
    datamodule = FoldDataModule(data, np.arange(8), np.arange(8), np.arange(8), batch_size=8, augment=False)
    batch = next(iter(datamodule.train_dataloader()))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = module.training_step(batch, 0)  # BCE + soft Dice
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_foreground_prior_starts_the_mask_head_at_that_probability() -> None:
    torch.manual_seed(0)
    module = FinetuneModule(get_kind("segmentation"), head="fpn", image_size=32, fpn_channels=8, foreground_prior=0.1)
    assert torch.sigmoid(module.model.head[-1].bias).item() == pytest.approx(0.1)
    plain = FinetuneModule(get_kind("segmentation"), head="fpn", image_size=32, fpn_channels=8)
    assert abs(plain.model.head[-1].bias.item()) < 1  # default init: no prior
    with pytest.raises(ValueError, match="foreground prior"):
        FinetuneModule(get_kind("segmentation"), head="fpn", image_size=32, fpn_channels=8, foreground_prior=1.5)
