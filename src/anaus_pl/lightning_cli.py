"""LightningCLI subclass and Trainer used by every training stage."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI


class AnausTrainer(Trainer):
    """Lightning's Trainer; custom stage subcommands are methods of this class."""


class AnausCLI(LightningCLI):
    """LightningCLI in subclass mode: ``model`` and ``data`` name their classes in the stage YAML."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("auto_configure_optimizers", False)
        super().__init__(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_class=AnausTrainer,
            **kwargs,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's subcommands plus the custom ones of :class:`AnausTrainer`."""
        commands = dict(LightningCLI.subcommands())
        commands.update(getattr(AnausTrainer, "extra_subcommands", {}))
        return commands
