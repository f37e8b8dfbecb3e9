"""The EMA target network of BYOL-style methods: a frozen copy of the online network and its momentum update."""

from __future__ import annotations

import copy

import torch
from torch import nn

from anaus_pl.schedules import warmup_cosine


def target_copy(online: nn.Module) -> nn.Module:
    """The target network: a deep copy of ``online`` that takes no gradient."""
    return copy.deepcopy(online).requires_grad_(False)


class MomentumUpdater:
    """Owns the target's update ``xi <- m xi + (1 - m) theta`` and its momentum schedule.

    The momentum rises from ``base_momentum`` at step 0 to ``final_momentum`` at the last step along
    :func:`~anaus_pl.schedules.warmup_cosine` (BYOL's cosine schedule).
    """

    def __init__(self, base_momentum: float = 0.99, final_momentum: float = 1.0) -> None:
        if not 0.0 <= base_momentum <= final_momentum <= 1.0:
            raise ValueError(f"momentum must satisfy 0 <= base ({base_momentum}) <= final ({final_momentum}) <= 1")
        self.base_momentum, self.final_momentum = base_momentum, final_momentum
        self.momentum = base_momentum  # the momentum of the last update

    def momentum_at(self, step: int, total_steps: int) -> float:
        """The momentum at optimizer step ``step`` of ``total_steps``."""
        return warmup_cosine(step, total_steps, start=self.base_momentum, end=self.final_momentum)

    @torch.no_grad()
    def update(self, online: nn.Module, target: nn.Module, step: int, total_steps: int) -> float:
        """Move ``target``'s parameters towards ``online``'s with the momentum of ``step``; returns that momentum."""
        self.momentum = self.momentum_at(step, total_steps)
        online_parameters = [p.detach() for p in online.parameters()]
        torch._foreach_lerp_(list(target.parameters()), online_parameters, 1.0 - self.momentum)
        return self.momentum
