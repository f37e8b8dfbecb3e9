"""The masked mean: hand values and equality with the two reductions it replaced."""

from __future__ import annotations

import pytest
import torch

from anaus_pl.losses.reduction import masked_mean


def test_hand_values() -> None:
    values = torch.tensor([[1.0, 2.0], [3.0, 10.0]])
    assert masked_mean(values).item() == pytest.approx(4.0)
    assert masked_mean(values, torch.tensor([[True, False], [True, False]])).item() == pytest.approx(2.0)
    assert masked_mean(values, torch.tensor([[0.5, 0.0], [0.0, 0.5]])).item() == pytest.approx(5.5)
    assert masked_mean(values, torch.zeros(2, 2, dtype=torch.bool)).item() == 0.0  # nothing counts: no loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_equals_the_replaced_reduction(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(4, 16, generator=generator).to(dtype)
    valid = torch.rand(4, 16, generator=generator) > 0.3
    weight = valid.to(values.dtype)  # core_region_loss and bce_dice_loss before
    assert torch.equal(masked_mean(values, valid), (values * weight).sum() / weight.sum().clamp_min(1.0))
