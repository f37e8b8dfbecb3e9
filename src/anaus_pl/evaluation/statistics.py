"""Paired statistics over evaluation units (folds x repeats).

Every init is trained and tested on the same folds, so two inits are compared
by their per-unit differences: a one-sample t-interval on those differences
(far narrower than comparing two fold spreads when the folds' difficulty
dominates), and the smallest difference that design detects, from the
noncentral t distribution (two-sided test at ``alpha``, power ``power``).

Folds of one cross-validation share training images, so their differences
are not fully independent; the interval treats them as independent (the usual
approximation, a little optimistic; repeats with new folds reduce the effect).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats


def sample_std(values: Sequence[float]) -> float:
    """Sample standard deviation (``ddof=1``); nan for fewer than two values."""
    values = np.asarray(values, dtype=float)
    return float(np.std(values, ddof=1)) if values.size > 1 else float("nan")


def detectable_difference(std: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true mean difference a paired two-sided t-test on ``n`` differences of std ``std`` detects.

    Solves ``P(|T| > t_{1-alpha/2, n-1}) = power`` for ``T ~ nct(n-1, delta sqrt(n) / std)``; nan when
    ``n < 2``, 0 when ``std`` is 0.
    """
    if n < 2 or not np.isfinite(std):
        return float("nan")
    if std == 0:
        return 0.0
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(effect: float) -> float:  # effect = delta / std * sqrt(n), the noncentrality
        lower_tail = stats.nct.cdf(-critical, df, effect)
        return stats.nct.sf(critical, df, effect) + (0.0 if np.isnan(lower_tail) else lower_tail) - power

    upper = critical + stats.norm.ppf(power)  # the normal approximation's answer: a little short of the power
    while shortfall(upper) < 0:
        upper *= 1.5
    noncentrality = optimize.brentq(shortfall, 0.0, upper, xtol=1e-10)
    return float(noncentrality * std / math.sqrt(n))


@dataclass(frozen=True)
class PairedComparison:
    """``candidate - reference`` over paired units, with its 95 % t-interval and detectable difference."""

    mean: float
    low: float
    high: float
    std: float
    n: int
    detectable: float
    higher_is_better: bool = True

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` (the interval excludes 0) or ``no difference shown``."""
        if not (np.isfinite(self.low) and np.isfinite(self.high)) or self.low <= 0 <= self.high:
            return "no difference shown"
        gain = self.mean > 0 if self.higher_is_better else self.mean < 0
        return "better" if gain else "worse"

    def sentence(self, candidate: str, reference: str, scale: float = 1.0, unit: str = "") -> str:
        """A statement generated from the numbers, with the detectable difference beside the verdict."""
        numbers = (
            f"{scale * self.mean:+.3g}{unit} [{scale * self.low:+.3g}, {scale * self.high:+.3g}] "
            f"(95 % CI, n={self.n} paired units; detectable difference {scale * self.detectable:.3g}{unit})"
        )
        verdict = self.verdict
        if verdict == "no difference shown":
            return f"{candidate} vs {reference}: {numbers}: no difference shown"
        return f"{candidate} is {verdict} than {reference}: {numbers}"


def paired_comparison(
    candidate: Sequence[float],
    reference: Sequence[float],
    confidence: float = 0.95,
    power: float = 0.8,
    higher_is_better: bool = True,
) -> PairedComparison:
    """Compare two equally long, unit-aligned value lists (same folds and repeats, same order)."""
    candidate, reference = np.asarray(candidate, dtype=float), np.asarray(reference, dtype=float)
    if candidate.shape != reference.shape or candidate.ndim != 1:
        raise ValueError(f"paired values need two lists of one length, got {candidate.shape} and {reference.shape}")
    differences = candidate - reference
    n = differences.size
    mean, std = float(differences.mean()) if n else float("nan"), sample_std(differences)
    if n < 2:
        return PairedComparison(mean, float("nan"), float("nan"), std, n, float("nan"), higher_is_better)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n))
    return PairedComparison(
        mean, mean - half, mean + half, std, n, detectable_difference(std, n, 1 - confidence, power), higher_is_better
    )
