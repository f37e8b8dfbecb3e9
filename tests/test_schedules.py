"""The one warm-up cosine: hand values and bit-equality with the three schedules it replaced."""

from __future__ import annotations

import math

import pytest

from anaus_pl.schedules import warmup_cosine


def _old_lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:  # pretrain's warmup_cosine before
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _old_cosine_factor(step: int, length: int, warmup: int) -> float:  # adapt's cosine_factor before
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, length - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _old_momentum(step: int, total_steps: int, base: float) -> float:  # pretrain's cosine_momentum before
    progress = min(step / max(total_steps, 1), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


def test_hand_values() -> None:
    assert warmup_cosine(0, 110, 10) == pytest.approx(0.1) and warmup_cosine(9, 110, 10) == pytest.approx(1.0)
    assert warmup_cosine(60, 110, 10) == pytest.approx(0.5) and warmup_cosine(110, 110, 10) == pytest.approx(0.0)
    assert warmup_cosine(500, 110, 10) == 0.0  # held at the end past the last step
    assert warmup_cosine(0, 100, start=0.99, end=1.0) == pytest.approx(0.99)
    assert warmup_cosine(50, 100, start=0.99, end=1.0) == pytest.approx(0.995)
    assert warmup_cosine(100, 100, start=0.99, end=1.0) == pytest.approx(1.0)


@pytest.mark.parametrize(("total", "warmup"), [(110, 10), (10, 2), (7, 0), (1, 1), (0, 0), (5, 9)])
def test_equals_the_replaced_schedules_bit_for_bit(total: int, warmup: int) -> None:
    for step in range(0, total + 3):
        assert warmup_cosine(step, total, warmup) == _old_lr_factor(step, warmup, total)
        assert warmup_cosine(step, total, warmup) == _old_cosine_factor(step, total, warmup)
        for base in (0.9, 0.99, 0.996):
            assert warmup_cosine(step, total, start=base, end=1.0) == _old_momentum(step, total, base)
