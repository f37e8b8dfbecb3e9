"""Inter-view anatomy-separating alignment: region InfoNCE (DetCon-B form) with an EMA target.

Notation for one scale: ``B`` local images, ``K`` sampled region slots per image,
``D`` embedding size, ``G`` images in the global batch (all DDP ranks).
``p^v_{b,k}`` are the L2-normalised online predictions of view ``v``,
``t^v_{g,j}`` the L2-normalised, stop-gradient target projections of the global
batch, ``m_{b,k}`` the region id of slot ``k`` of image ``b`` (the same ids in
both views and both networks).

For the direction 1 -> 2 the logits of an anchor ``(b, k)`` are::

    l^{12}_{b,k,g,j} = <p^1_{b,k}, t^2_{g,j}> / tau
    l^{11}_{b,k,g,j} = <p^1_{b,k}, t^1_{g,j}> / tau  - inf * [g = b] [m_{g,j} = m_{b,k}]

(the same image, same view, same region entries are masked), concatenated over
``(g, j)`` of both blocks. Positives are ``P_{b,k} = {(b, j) : m_{b,j} = m_{b,k}}``
in the cross-view block, each with label mass ``1/|P|``::

    loss^{12}_{b,k} = - sum_{(g,j) in P} 1/|P| log softmax(l_{b,k})_{g,j}
    w_{b,k} = valid_{b,k} / #{k' : m_{b,k'} = m_{b,k}}          (duplicate draws down-weighted)
    L_align = mean_{b,k} w_{b,k} loss^{12}_{b,k} + mean_{b,k} w_{b,k} loss^{21}_{b,k}

Negatives are the other regions of the same image (both views: the
anatomy-separating part) and every region of every other image on every rank.
With one region per image it is the image-level InfoNCE between an online
prediction and the target of the other view of the same image.
Targets carry no gradient, so a plain all-gather suffices under DDP.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F

_MASK_VALUE = 1e9


class AlignmentOutput(NamedTuple):
    """The loss and two diagnostics (mean cosine similarity of positives and of negatives)."""

    loss: torch.Tensor
    positive_similarity: torch.Tensor
    negative_similarity: torch.Tensor


def gather_without_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather ``tensor`` along dim 0 over the default process group.

    Returns the concatenation over ranks and the offset of this rank's rows.
    Without an initialised process group it returns ``(tensor, 0)``. Every
    rank must pass the same shape (the datamodule drops the last batch).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor, 0
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.detach().contiguous())
    return torch.cat(parts), dist.get_rank() * tensor.shape[0]


def _one_direction(
    online: torch.Tensor,
    target_cross: torch.Tensor,
    target_same: torch.Tensor,
    ids: torch.Tensor,
    global_ids: torch.Tensor,
    offset: int,
    weight: torch.Tensor,
    tau: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, k, _ = online.shape
    g = target_cross.shape[0]
    own_image = torch.zeros(b, g, dtype=torch.bool, device=online.device)
    own_image[torch.arange(b, device=online.device), offset + torch.arange(b, device=online.device)] = True
    same_region = ids[:, :, None, None] == global_ids[None, None, :, :]  # (B, K, G, K)
    own_region = own_image[:, None, :, None] & same_region

    cross = torch.einsum("bkd,gjd->bkgj", online, target_cross)
    same = torch.einsum("bkd,gjd->bkgj", online, target_same)
    logits = torch.cat([cross / tau, same / tau - _MASK_VALUE * own_region], dim=2).reshape(b, k, -1)
    labels = torch.cat([own_region, torch.zeros_like(own_region)], dim=2).reshape(b, k, -1).to(online.dtype)
    positives = labels.sum(-1)
    labels = labels / positives.clamp_min(1.0)[..., None]
    per_anchor = -(labels * F.log_softmax(logits, dim=-1)).sum(-1)
    loss = (weight * (positives > 0) * per_anchor).mean()

    with torch.no_grad():
        pos_sim = (cross * own_region).sum() / own_region.sum().clamp_min(1)
        negative = ~own_region
        neg_sim = (cross * negative).sum() / negative.sum().clamp_min(1)
    return loss, pos_sim, neg_sim


def duplicate_weights(ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``w_{b,k} = valid_{b,k} / #{k' : m_{b,k'} = m_{b,k}}`` for ids ``(B, K)``."""
    counts = (ids[:, :, None] == ids[:, None, :]).sum(-1).to(torch.float32)
    return valid.to(torch.float32) / counts


def region_alignment_loss(
    online_1: torch.Tensor,
    online_2: torch.Tensor,
    target_1: torch.Tensor,
    target_2: torch.Tensor,
    region_ids: torch.Tensor,
    valid: torch.Tensor | None = None,
    tau: float = 0.1,
    gather: bool = True,
) -> AlignmentOutput:
    """Symmetric region InfoNCE of one scale (equations in the module docstring).

    Args:
        online_1, online_2: online predictions ``q(g(pool(f(view))))`` ``(B, K, D)``.
        target_1, target_2: target projections ``g'(pool(f'(view)))`` ``(B, K, D)``; detached here.
        region_ids: ``(B, K)`` integer region ids, shared by both views and both networks.
        valid: ``(B, K)`` bool, slots whose region is present in both views (default all).
        tau: softmax temperature.
        gather: all-gather the targets over DDP ranks (negatives from every rank).
    """
    if valid is None:
        valid = torch.ones_like(region_ids, dtype=torch.bool)
    p1, p2 = F.normalize(online_1, dim=-1), F.normalize(online_2, dim=-1)
    t1, t2 = F.normalize(target_1.detach(), dim=-1), F.normalize(target_2.detach(), dim=-1)
    # Invalid slots get id -1 in the gathered candidates so they are never positives.
    candidate_ids = torch.where(valid, region_ids, torch.full_like(region_ids, -1))
    if gather:
        stacked, offset = gather_without_grad(torch.stack([t1, t2]).transpose(0, 1).contiguous())
        t1_all, t2_all = stacked[:, 0], stacked[:, 1]
        global_ids, _ = gather_without_grad(candidate_ids)
    else:
        t1_all, t2_all, global_ids, offset = t1, t2, candidate_ids, 0
    weight = duplicate_weights(region_ids, valid)
    loss_12, pos_12, neg_12 = _one_direction(p1, t2_all, t1_all, candidate_ids, global_ids, offset, weight, tau)
    loss_21, pos_21, neg_21 = _one_direction(p2, t1_all, t2_all, candidate_ids, global_ids, offset, weight, tau)
    return AlignmentOutput(loss_12 + loss_21, (pos_12 + pos_21) / 2, (neg_12 + neg_21) / 2)
