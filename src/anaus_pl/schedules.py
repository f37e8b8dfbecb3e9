"""The one warm-up cosine schedule, shared by the learning rates (adapt, pretrain) and the EMA momentum."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int = 0, start: float = 1.0, end: float = 0.0) -> float:
    """Value at ``step``: linear warm-up to ``start``, then a half cosine from ``start`` to ``end``.

    * ``step < warmup_steps``: ``start (step + 1) / warmup_steps``;
    * after: ``end + (start - end) (1 + cos(pi p)) / 2`` with
      ``p = min((step - warmup_steps) / (total_steps - warmup_steps), 1)``, so it holds ``end`` past ``total_steps``.

    The learning-rate factor is ``warmup_cosine(k, K, W)`` (0 -> 1 -> 0); BYOL's target momentum is
    ``warmup_cosine(k, K, start=base, end=1)``, i.e. ``1 - (1 - base) (cos(pi k / K) + 1) / 2``.
    """
    if step < warmup_steps:
        return start * (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))
