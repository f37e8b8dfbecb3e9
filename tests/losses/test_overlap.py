"""The Dice/IoU family: hand-computed cases, the empty policy, and equality with the copies it replaced."""

from __future__ import annotations

import pytest
import torch

from anaus_pl.losses.overlap import empty_safe_ratio, hard_dice, hard_iou, overlap_counts


def _masks() -> tuple[torch.Tensor, torch.Tensor]:
    predicted = torch.zeros(3, 2, 4, dtype=torch.bool)
    target = torch.zeros(3, 2, 4, dtype=torch.bool)
    predicted[0, 0, :3] = True  # image 0: TP 2, FP 1, FN 1
    target[0, 0, 1:4] = True
    target[1, 1, :2] = True  # image 1: nothing predicted, FN 2; image 2: both empty
    return predicted, target


def test_hand_computed_counts_dice_and_iou() -> None:
    predicted, target = _masks()
    tp, fp, fn = overlap_counts(predicted, target)
    assert tp.tolist() == [2, 0, 0] and fp.tolist() == [1, 0, 0] and fn.tolist() == [1, 2, 0]
    assert hard_dice(predicted, target).tolist() == pytest.approx([4 / 6, 0.0, 1.0])
    assert hard_iou(predicted, target).tolist() == pytest.approx([2 / 4, 0.0, 1.0])
    assert hard_iou(predicted, target, smooth=1.0).tolist() == pytest.approx([3 / 5, 1 / 3, 1.0])
    assert hard_dice(predicted, target, smooth=1.0).tolist() == pytest.approx([5 / 7, 1 / 3, 1.0])
    ppv = empty_safe_ratio(tp, tp + fp, (tp + fp + fn) == 0)
    assert ppv.tolist() == pytest.approx([2 / 3, 0.0, 1.0])  # nothing predicted but something missed: 0


def test_equals_the_replaced_copies() -> None:
    generator = torch.Generator().manual_seed(0)
    predicted = torch.rand(6, 3, 16, 16, generator=generator) > 0.6
    target = torch.rand(6, 3, 16, 16, generator=generator) > 0.7
    target[0, 0] = False
    predicted[0, 0] = False  # one both-empty pair
    # adapt's hard_iou before: (|P & T| + 1) / (|P | T| + 1)
    former_iou = ((predicted & target).sum((-2, -1)).float() + 1) / ((predicted | target).sum((-2, -1)).float() + 1)
    assert torch.equal(hard_iou(predicted, target, smooth=1.0), former_iou)
    # adapt's prompted validation Dice before (non-empty targets only)
    present = target.flatten(2).any(2)
    p, t = predicted[present], target[present]
    former_dice = 2 * (p & t).sum((-2, -1)) / (p.sum((-2, -1)) + t.sum((-2, -1))).clamp_min(1)
    assert torch.equal(hard_dice(p, t), former_dice)
    # evaluation's per-image ratios before: flattened counts, both empty -> 1
    fp_, ft = predicted.flatten(2), target.flatten(2)
    tp = (fp_ & ft).sum(-1).float()
    fp = (fp_ & ~ft).sum(-1).float()
    fn = (~fp_ & ft).sum(-1).float()
    denominator = 2 * tp + fp + fn
    former = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), (tp + fp + fn == 0).float())
    assert torch.equal(hard_dice(predicted, target), former)
    assert hard_dice(predicted, target)[0, 0] == 1.0
