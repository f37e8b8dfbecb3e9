"""A whole pretrain loss on a fixed global batch: 2 gloo ranks (half the batch each) equal 1 process.

What DDP changes in a step is the alignment loss's negatives (gathered from every rank, with gradient)
and the gradient averaging; both must leave the global-batch loss and gradient as one process has them.
BatchNorm runs on its running statistics here (``eval()``): CPU/gloo has no SyncBatchNorm, and per-rank
batch statistics are the one documented difference (``sync_batchnorm: true`` on GPUs). The core
crop's random corruption is switched off: it is per image, and its draws would differ between runs.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
from lightning.pytorch import seed_everything
from test_pretrain import TINY, _batch

from anaus_pl.data.corruption import CorruptionConfig
from anaus_pl.tasks.pretrain import PretrainTask

NUM_IDS = 8  # above every id of the synthetic store, so every row draws over the same categories


class RowSeededRegions(PretrainTask):
    """Region ids drawn row by row from a seed fixed by the row's index in the global batch.

    ``row_offset`` is the global index of this process's first row, so a rank holding rows 2-3
    draws exactly what one process draws for those rows.
    """

    row_offset = 0

    def draw_regions(self, mask_a, mask_b, image_size, num_ids, generator=None):
        self.draws = getattr(self, "draws", 0) + 1  # the views' draw and the cores' draw differ
        rows = []
        for i in range(mask_a.shape[0]):
            with torch.random.fork_rng():
                torch.manual_seed(1000 * self.draws + self.row_offset + i)
                rows.append(super().draw_regions(mask_a[i : i + 1], mask_b[i : i + 1], image_size, NUM_IDS))
        # rows of (regions_a, regions_b, slots), each {scale: (tensor, tensor)} -> the same for the batch
        return tuple(
            {scale: tuple(torch.cat(parts) for parts in zip(*(row[k][scale] for row in rows))) for scale in rows[0][k]}
            for k in range(3)
        )


def _task(state: dict | None = None) -> RowSeededRegions:
    task = RowSeededRegions(**TINY, corruption=CorruptionConfig(shuffle_p=0.0, nonlinear_p=0.0, inpaint_p=0.0))
    if state is not None:
        task.load_state_dict(state)
    return task.eval()


def _loss_and_gradient(task: RowSeededRegions, batch: dict[str, torch.Tensor]) -> tuple[float, torch.Tensor]:
    task.zero_grad()
    loss = task.compute_losses(batch)["loss"]
    loss.backward()
    return loss.item(), task.online.encoder.backbone.conv1.weight.grad.clone()


def _worker(rank: int, world: int, port: int, state: dict, batch: dict, queue) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    n = batch["view1"].shape[0] // world
    task = _task(state)
    task.row_offset = rank * n
    loss, gradient = _loss_and_gradient(task, {k: v[rank * n : (rank + 1) * n] for k, v in batch.items()})
    # what DDP does: the mean of the ranks' losses (logged) and of their gradients (applied)
    loss = torch.tensor(loss)
    for tensor in (loss, gradient):
        dist.all_reduce(tensor)
        tensor /= world
    if rank == 0:
        queue.put((loss.item(), gradient.numpy()))  # by value: the worker exits before the test reads it
    dist.destroy_process_group()


@pytest.mark.ddp
def test_two_rank_pretrain_loss_and_gradient_equal_one_process(synthetic_store: Path) -> None:
    import torch.multiprocessing as mp

    seed_everything(0)
    batch = {k: v for k, v in _batch(synthetic_store, batch_size=4).items() if isinstance(v, torch.Tensor)}
    task = _task()
    expected_loss, expected_gradient = _loss_and_gradient(task, batch)
    assert _loss_and_gradient(_task(task.state_dict()), batch)[0] == expected_loss  # the draws are reproducible
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(_worker, args=(2, port, task.state_dict(), batch, queue), nprocs=2, start_method="spawn")
    loss, gradient = queue.get()
    assert loss == pytest.approx(expected_loss, abs=1e-5)
    torch.testing.assert_close(torch.from_numpy(gradient), expected_gradient, atol=1e-5, rtol=1e-4)
