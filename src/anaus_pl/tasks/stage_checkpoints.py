"""Reading the Lightning checkpoints the stages write (adapt, pretrain, evaluate's fine-tuning).

Lightning keeps a stage's hyper-parameters in its checkpoint, some of them as
the configuration dataclasses below. Every stage reader allows all of them, so
that the checkpoint of another stage given by mistake is named as such (see
:func:`anaus_pl.checkpoints.stage_of`) rather than refused as foreign code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from anaus_pl.checkpoints import load_checkpoint
from anaus_pl.data.corruption import CorruptionConfig
from anaus_pl.data.views import ViewConfig
from anaus_pl.models.lpsam import LPSAMConfig
from anaus_pl.models.postprocess import PostProcess

STAGE_CONFIGS: tuple[type, ...] = (CorruptionConfig, ViewConfig, LPSAMConfig, PostProcess)


def load_stage_checkpoint(path: str | Path, stage: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``stage``'s Lightning checkpoint (``adapt``, ``pretrain``, ``finetune``), read without running code from it."""
    return load_checkpoint(path, stage, map_location, STAGE_CONFIGS)


def submodule_state(checkpoint: dict[str, Any], prefix: str) -> dict[str, torch.Tensor]:
    """The weights of one submodule of a stage checkpoint: the ``state_dict`` entries under ``prefix``, without it."""
    return {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
