"""Checks that run before any model is built or loaded: inputs exist, outputs can be written, checkpoints look right.

A stage's classes declare what they need in a static ``check_config(init_args)``, given
every init argument (LightningCLI fills in the defaults)
(e.g. :meth:`anaus_pl.data.datamodules.pretrain.PretrainDataModule.check_config`);
:func:`check_lightning_config` calls it for the model, the data and every
callback of a ``fit`` or ``validate`` configuration, before LightningCLI
instantiates any of them, and checks the trainer's output folders;
:func:`check_ckpt_path` checks ``ckpt_path`` before Lightning reads it. Every
error is one line naming the file and the fix.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from anaus_pl.checkpoints import check_checkpoint

LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")  # ckpt_path values Lightning resolves itself


def require_folder(path: str | Path, setting: str) -> None:
    """Fail unless the input folder ``path``, set by ``setting``, exists."""
    path = Path(path)
    if not path.is_dir():
        found = "is a file, not a folder" if path.exists() else "does not exist"
        raise FileNotFoundError(
            f"{path}: input folder {found}; fix {setting} (the phantom's folders are written by `make phantom`)"
        )


def require_writable(folder: str | Path, setting: str) -> None:
    """Fail unless ``folder``, set by ``setting``, can be created and written (a probe file is made and removed)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".anaus-pl.{os.getpid()}.probe"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise PermissionError(
            f"{folder}: cannot create or write this output folder ({error.strerror or error}); "
            f"set {setting} to a writable folder"
        ) from None


def _class_of(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _plain(value: Any) -> Any:
    return value.as_dict() if hasattr(value, "as_dict") else value


def _entries(value: Any) -> list[dict[str, Any]]:
    """The ``{class_path, init_args}`` entries of a config value that may be one, a list, a bool or None."""
    items = value if isinstance(value, list) else [value]
    return [entry for entry in map(_plain, items) if isinstance(entry, dict) and entry.get("class_path")]


def check_lightning_config(config: Any) -> None:
    """Pre-flight of a ``fit``/``validate`` configuration (a jsonargparse namespace of one subcommand).

    Calls ``check_config(init_args)`` of the data, model and callback classes
    that define one and checks that the trainer's output folders can be written.
    """
    trainer = _plain(config.get("trainer")) or {}
    callbacks = _entries(trainer.get("callbacks"))
    models = _entries(config.get("model"))
    for entry in _entries(config.get("data")) + models + callbacks:
        check = getattr(_class_of(entry["class_path"]), "check_config", None)
        if check is not None:
            check(entry.get("init_args") or {})
    if trainer.get("default_root_dir"):
        require_writable(trainer["default_root_dir"], "trainer.default_root_dir")
    for entry in _entries(trainer.get("logger")):
        save_dir = (entry.get("init_args") or {}).get("save_dir")
        if save_dir:
            require_writable(save_dir, "trainer.logger.init_args.save_dir")
    for entry in callbacks:
        dirpath = (entry.get("init_args") or {}).get("dirpath")
        if dirpath:
            require_writable(dirpath, f"the dirpath of trainer.callbacks {entry['class_path'].rpartition('.')[2]}")


def check_ckpt_path(config: Any) -> None:
    """``ckpt_path`` of a ``fit``/``validate`` configuration is a checkpoint of the model's stage (no unpickling)."""
    ckpt_path = config.get("ckpt_path")
    models = _entries(config.get("model"))
    stage = getattr(_class_of(models[0]["class_path"]), "checkpoint_stage", None) if models else None
    if ckpt_path and stage and str(ckpt_path) not in LIGHTNING_CKPT_NAMES:
        check_checkpoint(ckpt_path, stage)
