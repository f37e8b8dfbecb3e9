"""Core-region prediction loss on hand-computed cases."""

import math

import pytest
import torch

from anaus_pl.losses.core_region import core_region_loss


def test_normalized_two_images_three_regions_by_hand() -> None:
    # Angles between prediction and target per region: 0, 90, 180 degrees (image 0); 60, 0, 0 (image 1).
    online = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]], [[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    target = torch.tensor([[[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0]], [[0.5, math.sqrt(3) / 2], [0.0, 3.0], [1.0, 1.0]]])
    # ||u - v||^2 = 2 - 2 cos: 0, 2, 4, 1, 0, 0 -> mean 7/6
    assert core_region_loss(online, target).item() == pytest.approx(7 / 6, rel=1e-6)
    valid = torch.tensor([[True, True, False], [True, False, False]])
    assert core_region_loss(online, target, valid).item() == pytest.approx((0 + 2 + 1) / 3, rel=1e-6)


def test_mse_is_unnormalised_mean_square() -> None:
    online = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [3.0, 3.0]], [[1.0, 1.0], [2.0, 0.0], [0.0, 4.0]]])
    target = torch.zeros_like(online)
    expected = sum(v * v for v in online.flatten().tolist()) / online.numel()
    assert core_region_loss(online, target, kind="mse").item() == pytest.approx(expected)


def test_gradient_reaches_online_only_and_bad_kind_is_named() -> None:
    online, target = torch.randn(2, 3, 4, requires_grad=True), torch.randn(2, 3, 4, requires_grad=True)
    core_region_loss(online, target).backward()
    assert online.grad is not None and target.grad is None
    with pytest.raises(ValueError, match="normalized"):
        core_region_loss(online, target, kind="l1")  # type: ignore[arg-type]
