"""The randomness design: draws differ between workers, ranks and epochs, and repeat with the seed."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer, seed_everything

from anaus_pl.data.anatomy_store import AnatomyStoreWriter
from anaus_pl.data.corruption import CorruptionConfig, corrupt
from anaus_pl.data.datamodules.pretrain import PretrainDataModule, TwoViewStoreDataset
from anaus_pl.data.views import TwoViewTransform, ViewConfig
from anaus_pl.models.regions import region_areas, sample_region_ids
from anaus_pl.randomness import SampleStreams, global_rank, run_seed, step_generator
from anaus_pl.tasks.pretrain import PretrainTask

TINY = dict(
    scales=["c5", "p3"],
    fpn_channels=16,
    projector_hidden=32,
    embedding_dim=16,
    predictor_hidden=32,
    regions_per_view=4,
    log_images_every_n_steps=0,
    channels_last=False,
    batch_size=2,
    image_size=32,
    classes=[],
)
VIEWS = ViewConfig(image_size=32, core_size=32)


@pytest.fixture(scope="module")
def grey_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 identical flat grey frames: every difference between samples is augmentation."""
    frames, size = 16, 48
    writer = AnatomyStoreWriter(tmp_path_factory.mktemp("grey") / "anatomy.h5", ["a", "b"], size)
    masks = np.zeros((frames, size, size), np.uint8)
    masks[:, :, size // 2 :] = 1
    masks[:, size // 2 :, :] = 2
    writer.append(
        np.full((frames, size, size), 120, np.uint8),
        masks,
        np.full((frames, 2), size, np.int32),
        np.ones((frames, 2), np.float32),
        [f"grey/{i}.png" for i in range(frames)],
    )
    return writer.finalize()


def _datamodule(store: Path, num_workers: int = 0, batch_size: int = 1) -> PretrainDataModule:
    dm = PretrainDataModule(str(store), batch_size=batch_size, num_workers=num_workers, views=VIEWS)
    dm.setup("fit")
    return dm


def _view_means(store: Path, num_workers: int, batches: int = 8) -> list[float]:
    loader = _datamodule(store, num_workers).train_dataloader()
    return [batch["view1"].float().mean().item() for _, batch in zip(range(batches), loader)]


@pytest.fixture
def seed_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")


def test_two_workers_draw_different_augmentation(grey_store: Path, seed_zero: None) -> None:
    means = _view_means(grey_store, num_workers=2)
    pairs = list(zip(means[0::2], means[1::2]))  # batch 2k from worker 0, 2k + 1 from worker 1
    assert sum(a != b for a, b in pairs) >= 3, pairs
    assert means == _view_means(grey_store, num_workers=0)  # and a sample's draw does not depend on the worker


def test_same_seed_same_first_batch_other_seed_or_epoch_other_batch(
    synthetic_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def first_batch(epoch: int = 0) -> dict[str, torch.Tensor]:
        loader = _datamodule(synthetic_store, batch_size=4).train_dataloader()
        loader.sampler.set_epoch(epoch)
        return next(iter(loader))

    monkeypatch.setenv("PL_GLOBAL_SEED", "3")
    a, b = first_batch(), first_batch()
    assert all(torch.equal(a[k], b[k]) for k in a)
    resumed_epoch_1 = first_batch(epoch=1)
    assert not torch.equal(a["view1"], resumed_epoch_1["view1"])
    # a resumed run's epoch 1 draws what an uninterrupted run draws in its epoch 1
    loader = _datamodule(synthetic_store, batch_size=4).train_dataloader()
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)
        batch = next(iter(loader))
    assert all(torch.equal(batch[k], resumed_epoch_1[k]) for k in batch)
    monkeypatch.setenv("PL_GLOBAL_SEED", "4")
    assert not torch.equal(a["view1"], first_batch()["view1"])


def _rank_draws(rank: int, world: int, port: int, store: str, queue) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), PL_GLOBAL_SEED="0")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from anaus_pl.data.anatomy_store import AnatomyStore

    dataset = TwoViewStoreDataset(AnatomyStore(Path(store)), TwoViewTransform(VIEWS), streams=SampleStreams())
    sample = dataset[0]
    generator = step_generator(run_seed(), global_rank(), step=0)
    cores = corrupt(sample["core1"][None].float() / 255, CorruptionConfig(), generator)
    areas = region_areas(sample["mask1"][None].long(), 3)
    ids, _ = sample_region_ids(areas, areas, 16, generator=generator)
    draws = torch.cat([sample["view1"].flatten().float(), cores.flatten(), ids.flatten().float()])
    gathered = [torch.zeros_like(draws) for _ in range(world)]
    dist.all_gather(gathered, draws)
    if rank == 0:
        n = sample["view1"].numel()
        m = n + cores.numel()
        queue.put([(g[:n].numpy(), g[n:m].numpy(), g[m:].numpy()) for g in gathered])
    dist.destroy_process_group()


@pytest.mark.ddp
def test_two_gloo_ranks_draw_different_crops_corruption_and_regions(grey_store: Path) -> None:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(_rank_draws, args=(2, port, str(grey_store), queue), nprocs=2, start_method="spawn")
    (view0, core0, ids0), (view1, core1, ids1) = queue.get()
    assert not np.array_equal(view0, view1)
    assert not np.array_equal(core0, core1)
    assert not np.array_equal(ids0, ids1)


def _fit_weights(store: Path, root: Path) -> dict[str, torch.Tensor]:
    seed_everything(0)
    task = PretrainTask(
        **TINY, optimizer="adamw", base_lr=1e-3, scale_lr=False, warmup_epochs=0.5, export_dir=str(root / "export")
    )
    trainer = Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=root,
        deterministic=True,
    )
    dm = PretrainDataModule(str(store), batch_size=2, num_workers=0, views=ViewConfig(image_size=32, core_size=32))
    trainer.fit(task, datamodule=dm)
    return {k: v.clone() for k, v in task.online.encoder.backbone.state_dict().items()}


@pytest.mark.slow
def test_fit_twice_with_one_seed_gives_the_same_encoder_on_cpu(synthetic_store: Path, tmp_path: Path) -> None:
    seed_everything(0)
    initial = PretrainTask(**TINY).online.encoder.backbone.conv1.weight.detach().clone()
    first, second = _fit_weights(synthetic_store, tmp_path / "a"), _fit_weights(synthetic_store, tmp_path / "b")
    assert not torch.equal(first["conv1.weight"], initial)  # it trained
    assert all(torch.equal(first[k], second[k]) for k in first)
