"""The EMA helper: the target moves by (1 - m) towards the online network, m follows BYOL's cosine."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from anaus_pl.models.ema import MomentumUpdater, target_copy


def test_target_copy_is_an_equal_frozen_copy() -> None:
    online = nn.Linear(3, 2)
    target = target_copy(online)
    assert target is not online and not any(p.requires_grad for p in target.parameters())
    assert all(torch.equal(a, b) for a, b in zip(online.parameters(), target.parameters()))
    assert all(p.requires_grad for p in online.parameters())


def test_update_moves_the_target_by_one_minus_momentum() -> None:
    online, target = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        online.weight.fill_(1.0), online.bias.fill_(1.0), target.weight.fill_(0.0), target.bias.fill_(0.0)
    ema = MomentumUpdater(base_momentum=0.9)
    assert ema.momentum == 0.9
    momentum = ema.update(online, target, step=5, total_steps=10)  # halfway: 1 - 0.1 (cos(pi/2) + 1) / 2 = 0.95
    assert momentum == pytest.approx(0.95) and ema.momentum == momentum
    torch.testing.assert_close(target.weight, torch.full((1, 2), 0.05))
    torch.testing.assert_close(target.bias, torch.full((1,), 0.05))
    assert ema.update(online, target, step=10, total_steps=10) == pytest.approx(1.0)  # m = 1: the target stays
    torch.testing.assert_close(target.weight, torch.full((1, 2), 0.05))


def test_bad_momentum_is_rejected() -> None:
    with pytest.raises(ValueError, match="momentum"):
        MomentumUpdater(base_momentum=1.5)
