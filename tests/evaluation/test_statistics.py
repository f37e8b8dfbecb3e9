"""Paired statistics: t-intervals, sample std and the detectable difference against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anaus_pl.evaluation.statistics import detectable_difference, paired_comparison, sample_std


def test_sample_std_uses_ddof_one() -> None:
    assert sample_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx(math.sqrt(5 / 3))
    assert math.isnan(sample_std([0.5]))


def test_t_interval_matches_a_hand_computed_case() -> None:
    # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, t_{0.975, 2} = 4.302653
    result = paired_comparison([0.6, 0.7, 0.8], [0.5, 0.5, 0.5])
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert (result.mean, result.n) == (pytest.approx(0.2), 3)
    assert (result.low, result.high) == (pytest.approx(0.2 - half, abs=1e-6), pytest.approx(0.2 + half, abs=1e-6))
    assert result.verdict == "no difference shown"  # the interval (-0.048, 0.448) holds 0


def test_pairing_removes_the_shared_fold_difficulty() -> None:
    folds = np.array([0.5, 0.9, 0.6, 0.8, 0.7])  # fold spread 0.16, a constant gain of 0.02
    result = paired_comparison(folds + 0.02 + np.array([0.001, -0.001, 0.0, 0.001, -0.001]), folds)
    assert result.verdict == "better" and result.high - result.low < 0.01
    assert paired_comparison(folds - 0.02, folds + np.array([0, 0.001, 0, -0.001, 0])).verdict == "worse"
    assert paired_comparison(folds - 0.02, folds, higher_is_better=False).verdict == "better"  # e.g. HD95


@pytest.mark.parametrize(("n", "effect"), [(10, 0.9960), (5, 1.6820), (20, 0.6604)])
def test_detectable_difference_matches_published_power_tables(n: int, effect: float) -> None:
    # one-sample / paired t-test, two-sided alpha 0.05, power 0.8 (G*Power, statsmodels TTestPower)
    assert detectable_difference(1.0, n) == pytest.approx(effect, abs=2e-3)
    assert detectable_difference(0.05, n) == pytest.approx(0.05 * effect, abs=1e-4)


def test_detectable_difference_tends_to_the_normal_formula() -> None:
    assert detectable_difference(1.0, 4000) * math.sqrt(4000) == pytest.approx(1.959964 + 0.841621, rel=2e-3)


def test_degenerate_inputs() -> None:
    assert math.isnan(paired_comparison([0.5], [0.4]).low)
    assert paired_comparison([0.5], [0.4]).verdict == "no difference shown"
    assert detectable_difference(0.0, 5) == 0.0
    with pytest.raises(ValueError, match="one length"):
        paired_comparison([0.1, 0.2], [0.1])
