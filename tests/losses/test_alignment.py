"""Region InfoNCE: hand-computed case, DetCon-B equivalence, image-level reduction, DDP gather."""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.nn.functional as F

from anaus_pl.losses.alignment import region_alignment_loss


def _unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def test_hand_computed_two_images_three_regions() -> None:
    # 2 images x 3 distinct regions, 2-d embeddings; targets equal the predictions of the other view.
    tau = 0.5
    angles = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    p1 = torch.tensor([[[math.cos(a), math.sin(a)] for a in row] for row in angles])
    p2 = torch.tensor([[[math.cos(a + 0.1), math.sin(a + 0.1)] for a in row] for row in angles])
    t1, t2 = p1.clone(), p2.clone()
    ids = torch.tensor([[0, 1, 2], [0, 1, 2]])
    got = region_alignment_loss(p1, p2, t1, t2, ids, tau=tau).loss

    def direction(p, t_cross, t_same):
        total = 0.0
        for b in range(2):
            for k in range(3):
                anchor = p[b][k].tolist()
                dot = lambda v, anchor=anchor: (anchor[0] * v[0] + anchor[1] * v[1]) / tau  # noqa: E731
                logits = [dot(t_cross[g][j].tolist()) for g in range(2) for j in range(3)]
                logits += [dot(t_same[g][j].tolist()) for g in range(2) for j in range(3) if not (g == b and j == k)]
                log_z = math.log(sum(math.exp(v) for v in logits))
                total += -(dot(t_cross[b][k].tolist()) - log_z)
        return total / 6

    expected = direction(p1, t2, t1) + direction(p2, t1, t2)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def detcon_b_reference(p1, p2, t1, t2, pid1, pid2, tid1, tid2, tau):
    """DetCon-B's loss (Henaff et al. 2021) written from its definition, with separate online/target ids."""

    def one(pred, t_other, t_same, pid, tid_other, tid_same):
        n, k, _ = pred.shape
        pred, t_other, t_same = F.normalize(pred, dim=-1), F.normalize(t_other, dim=-1), F.normalize(t_same, dim=-1)
        losses = []
        for b in range(n):
            for i in range(k):
                logits, labels = [], []
                for g in range(n):
                    for j in range(k):
                        logits.append(pred[b, i] @ t_other[g, j] / tau)
                        labels.append(float(g == b and pid[b, i] == tid_other[g, j]))
                for g in range(n):
                    for j in range(k):
                        masked = g == b and pid[b, i] == tid_same[g, j]
                        logits.append(pred[b, i] @ t_same[g, j] / tau - (1e9 if masked else 0.0))
                        labels.append(0.0)
                logits_t, labels_t = torch.stack(logits), torch.tensor(labels)
                count = labels_t.sum()
                weight = float(count > 0) / float((pid[b] == pid[b, i]).sum())
                losses.append(-weight * (labels_t / count.clamp_min(1) * F.log_softmax(logits_t, 0)).sum())
        return torch.stack(losses).mean()

    return one(p1, t2, t1, pid1, tid2, tid1) + one(p2, t1, t2, pid2, tid1, tid2)


def test_equals_detcon_b_with_regions_fixed() -> None:
    g = torch.Generator().manual_seed(1)
    p1, p2, t1, t2 = (torch.randn(3, 4, 8, generator=g) for _ in range(4))
    ids = torch.tensor([[0, 1, 1, 2], [3, 3, 3, 3], [0, 2, 5, 1]])  # duplicates on purpose
    got = region_alignment_loss(p1, p2, t1, t2, ids, tau=0.1).loss
    expected = detcon_b_reference(p1, p2, t1, t2, ids, ids, ids, ids, tau=0.1)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_one_region_per_image_is_image_level_infonce() -> None:
    g = torch.Generator().manual_seed(2)
    p1, p2, t1, t2 = (torch.randn(5, 1, 16, generator=g) for _ in range(4))
    got = region_alignment_loss(p1, p2, t1, t2, torch.zeros(5, 1, dtype=torch.long), tau=0.2).loss

    def image_level(p, t_other, t_same):
        p, t_other, t_same = (F.normalize(x[:, 0], dim=-1) for x in (p, t_other, t_same))
        cross = p @ t_other.T / 0.2
        same = (p @ t_same.T / 0.2).masked_fill(torch.eye(5, dtype=torch.bool), float("-inf"))
        return F.cross_entropy(torch.cat([cross, same], 1), torch.arange(5))

    assert got.item() == pytest.approx((image_level(p1, t2, t1) + image_level(p2, t1, t2)).item(), rel=1e-5)


def test_invalid_slots_carry_no_loss_and_targets_no_gradient() -> None:
    p1, p2 = torch.randn(2, 3, 4, requires_grad=True), torch.randn(2, 3, 4, requires_grad=True)
    t1, t2 = torch.randn(2, 3, 4, requires_grad=True), torch.randn(2, 3, 4, requires_grad=True)
    ids = torch.tensor([[0, 1, 2], [0, 1, 2]])
    valid = torch.tensor([[True, True, True], [False, False, False]])
    region_alignment_loss(p1, p2, t1, t2, ids, valid).loss.backward()
    assert torch.all(p1.grad[1] == 0) and p1.grad[0].abs().sum() > 0
    assert t1.grad is None and t2.grad is None


def _ddp_worker(rank: int, world: int, port: int, inputs: tuple, queue) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    n = inputs[0].shape[0] // world
    local = [x[rank * n : (rank + 1) * n] for x in inputs]
    loss = region_alignment_loss(*local, tau=0.1).loss
    dist.all_reduce(loss)
    if rank == 0:
        queue.put((loss / world).item())
    dist.destroy_process_group()


@pytest.mark.ddp
def test_two_process_gloo_equals_one_process_on_the_global_batch() -> None:
    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(3)
    inputs = tuple(torch.randn(4, 3, 8, generator=g) for _ in range(4)) + (torch.randint(0, 3, (4, 3), generator=g),)
    expected = region_alignment_loss(*inputs, tau=0.1).loss.item()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(2, port, inputs, queue), nprocs=2, start_method="spawn")
    assert queue.get() == pytest.approx(expected, rel=1e-5)
