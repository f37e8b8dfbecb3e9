"""LightningCLI subclass and Trainer used by every training stage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI

from anaus_pl.logs import configure_logging
from anaus_pl.requeue import RequeueAtStepBoundary, SLURMStepRequeue
from anaus_pl.run_name import RunName, fill_run
from anaus_pl.tasks.annotate_writer import StoreOptions

log = logging.getLogger("anaus_pl")


class AnausTrainer(Trainer):
    """Lightning's Trainer; custom stage subcommands are methods of this class."""

    extra_subcommands = {"annotate": {"model", "datamodule"}}

    resolved_config: Any = None  # set by AnausCLI: the run's configuration, kept in the store's attributes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plugins = kwargs.get("plugins") or []
        for plugin in plugins if isinstance(plugins, list) else [plugins]:
            if isinstance(plugin, SLURMStepRequeue):  # its requeue runs as a callback, between steps
                self.callbacks.append(RequeueAtStepBoundary(plugin.requeue_signal))

    def annotate(
        self,
        model: LightningModule,
        datamodule: LightningDataModule,
        store: StoreOptions | None = None,
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Label every frame of ``datamodule`` with ``model`` into the anatomy store ``store.path``.

        Resumes an interrupted run (skips what earlier runs committed); does
        nothing when the finished store already exists. A store or shards
        written under another configuration are refused unless ``overwrite``
        (``--overwrite true``) replaces them. Inputs, checkpoint and output
        folder are checked before any model loads. Returns the summary.
        """
        from anaus_pl.data.anatomy_store import check_writable
        from anaus_pl.data.datamodules.annotate import AnnotateFramesDataModule
        from anaus_pl.tasks.annotate import AnnotateTask, check_predictor_checkpoint
        from anaus_pl.tasks.annotate_writer import AnatomyStoreCallback, check_config, config_sha256

        if not isinstance(model, AnnotateTask) or not isinstance(datamodule, AnnotateFramesDataModule):
            raise TypeError(
                "annotate needs model: anaus_pl.tasks.annotate.AnnotateTask and "
                "data: anaus_pl.data.datamodules.annotate.AnnotateFramesDataModule (see stages/annotate.yaml)"
            )
        store = store or StoreOptions()
        datamodule.check_inputs()
        check_predictor_checkpoint(model.predictor_loader, model.lpsam_checkpoint)
        check_writable(store.path)
        if Path(store.path).exists() and not overwrite:
            check_config(Path(store.path), config_sha256(self.resolved_config))
            logging.getLogger("anaus_pl").info(
                "%s exists: nothing to annotate (--overwrite true replaces it)", store.path
            )
            return {}
        model.load_predictor()
        datamodule.use_predictor(model.image_size, model.vocabulary.names)
        writer = AnatomyStoreCallback(store, config=self.resolved_config, overwrite=overwrite)
        self.callbacks.append(writer)
        try:
            self.predict(model, datamodule=datamodule, return_predictions=False)
        finally:
            self.callbacks.remove(writer)
        return writer.summary


class AnausCLI(LightningCLI):
    """LightningCLI in subclass mode: ``model`` and ``data`` name their classes in the stage YAML."""

    def __init__(self, **kwargs: Any) -> None:
        configure_logging()  # stage modules log set-up facts (splits, parameter counts) at INFO
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

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument(
            "--run",
            type=RunName,
            default="default",
            help="run name: replaces {run} in every config value, so runs/<stage>/{run}/ keeps runs apart",
        )
        # Values written once in a stage's YAML and handed to the other class (a link whose source or target
        # the stage's classes do not have is skipped).
        parser.link_arguments("data.init_args.batch_size", "model.init_args.batch_size")  # pretrain: LR scaling
        parser.link_arguments("data.init_args.views.init_args.image_size", "model.init_args.image_size")  # pretrain
        parser.link_arguments("model.init_args.model.image_size", "data.init_args.image_size")  # adapt
        parser.link_arguments("data.classes", "model.init_args.classes", apply_on="instantiate")  # adapt, pretrain

    def before_instantiate_classes(self) -> None:
        """Fill the run name into every ``{run}`` of the configuration (the saved config.yaml holds the paths),
        then check inputs, outputs and checkpoints before any class (and so any model) is built."""
        from anaus_pl.preflight import check_lightning_config

        config = self.config[self.subcommand] if self.subcommand else self.config
        fill_run(config, config.run)
        if self.subcommand in ("fit", "validate"):
            check_lightning_config(config)

    def _parse_ckpt_path(self) -> None:
        """Check ``ckpt_path`` (one line naming the file, the checkpoint expected and the fix) before LightningCLI
        reads its hyper-parameters; ``{run}`` is filled in first, as the path may hold it."""
        from anaus_pl.preflight import check_ckpt_path

        subcommand = self.config.get("subcommand")
        if subcommand in ("fit", "validate"):
            fill_run(self.config[subcommand], self.config[subcommand].run)
            check_ckpt_path(self.config[subcommand])
        super()._parse_ckpt_path()

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        trainer = self.trainer
        if trainer.global_rank == 0:
            config = self.config[self.subcommand] if self.subcommand else self.config
            log.info(
                "run %r: precision %s, accelerator %s, %d device(s) x %d node(s), strategy %s",
                config.run,
                trainer.precision,
                type(trainer.accelerator).__name__,
                trainer.num_devices,
                trainer.num_nodes,
                type(trainer.strategy).__name__,
            )

    def before_annotate(self) -> None:
        """Hand the resolved configuration to the store's attributes."""
        self.trainer.resolved_config = self.parser.dump(self.config, skip_none=False)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's subcommands plus the custom ones of :class:`AnausTrainer`."""
        commands = dict(LightningCLI.subcommands())
        commands.update(getattr(AnausTrainer, "extra_subcommands", {}))
        return commands
