"""BCE + Dice on hand-computed cases."""

import math

import pytest
import torch

from anaus_pl.losses.overlap import soft_dice_loss
from anaus_pl.losses.segmentation import bce_dice_loss


def test_dice_of_a_hand_computed_case() -> None:
    # p = sigmoid(0) = 0.5 everywhere on a 1x2 map, target [1, 0]: (2*0.5 + 1) / (1 + 1 + 1) = 2/3
    logits = torch.zeros(1, 2)
    target = torch.tensor([[1.0, 0.0]])
    assert soft_dice_loss(logits, target).item() == pytest.approx(1 - 2 / 3)


def test_absent_class_is_supervised_as_empty() -> None:
    empty = torch.zeros(1, 1, 2, 2)
    confident_empty = torch.full((1, 1, 2, 2), -20.0)
    confident_full = torch.full((1, 1, 2, 2), 20.0)
    assert soft_dice_loss(confident_empty, empty).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_dice_loss(confident_full, empty).item() == pytest.approx(1 - 1 / 5, abs=1e-6)
    assert bce_dice_loss(confident_full, empty).item() > bce_dice_loss(confident_empty, empty).item()


def test_weighting_matches_the_formula_and_ignores_unsupervised_pairs() -> None:
    logits = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[[1.0, 0.0]], [[1.0, 1.0]]]])
    a = 0.15
    bce = math.log(2)  # sigmoid(0) = 0.5 against any target
    dice0 = 1 - 2 / 3
    dice1 = 1 - (2 * 1.0 + 1) / (1 + 2 + 1)
    expected0 = (1 - a) * bce + a * dice0
    expected1 = (1 - a) * bce + a * dice1
    assert bce_dice_loss(logits, target, a).item() == pytest.approx((expected0 + expected1) / 2, rel=1e-6)
    weights = torch.tensor([[1.0, 0.0]])
    assert bce_dice_loss(logits, target, a, weights).item() == pytest.approx(expected0, rel=1e-6)
    assert bce_dice_loss(logits, target, a, torch.zeros(1, 2)).item() == 0.0


def test_dice_weight_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="dice_weight"):
        bce_dice_loss(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), dice_weight=1.5)


def test_empty_targets_take_bce_only() -> None:
    # a faint response (p = sigmoid(-2)) on an empty 2x2 target: BCE only, no Dice term near 1
    logits = torch.full((1, 1, 2, 2), -2.0)
    empty = torch.zeros(1, 1, 2, 2)
    bce = math.log(1 + math.exp(-2.0))  # -log(1 - sigmoid(-2))
    assert bce_dice_loss(logits, empty, 0.5).item() == pytest.approx(0.5 * bce, rel=1e-6)
    assert soft_dice_loss(logits, empty).item() > 0.3  # what the Dice term alone would have added
