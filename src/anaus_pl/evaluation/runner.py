"""The k-fold evaluation loop: task x repeat x protocol x init x fold, resumable, then the report.

A ``finetune`` unit fits :class:`FinetuneModule` on the fold's training part,
selects the best epoch on an inner validation split (or on the test fold in
the paper-compatible mode) and tests that checkpoint once on the held-out
fold. A frozen unit (``linear``, ``knn``) fits its probe on the frozen
features of the fold's training part (inner validation included: a probe has
fixed hyperparameters and needs no selection); features are extracted once
per task and init, cached under ``features/`` and shared by every fold and
repeat. Each unit writes ``results/<task>/<protocol>/<init>/r<repeat>_fold<k>.json``;
units whose file exists are skipped, so a killed evaluation resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import TensorBoardLogger
from tqdm.auto import tqdm

from anaus_pl import atomic
from anaus_pl.data.datamodules.finetune import FoldDataModule, LoadedTask
from anaus_pl.data.folds import inner_split, make_folds, restrict_official, save_folds, subsample
from anaus_pl.data.layouts import get_layout
from anaus_pl.data.layouts.base import Layout, SampleRef
from anaus_pl.evaluation.config import EvaluateConfig, TaskConfig
from anaus_pl.evaluation.selection import BestWeights
from anaus_pl.models.downstream import BackboneSpec, StagedEncoder, build_init
from anaus_pl.models.inits import init_label
from anaus_pl.models.probes import extract_features
from anaus_pl.tasks.finetune import FinetuneModule

log = logging.getLogger("anaus_pl.evaluate")


@dataclass(frozen=True)
class Unit:
    """One evaluation unit: a protocol and an init on fold ``fold`` of repeat ``repeat`` of a task."""

    task: TaskConfig
    protocol: str
    init: str
    repeat: int
    fold: int


@dataclass(frozen=True)
class FoldedTask:
    """A task's samples, decoded data and class names, with one repeat's folds (lists of sources)."""

    refs: list[SampleRef]
    folds: list[list[str]]
    data: LoadedTask
    class_names: list[str]


def result_path(out_dir: Path, task: str, protocol: str, init: str, repeat: int, fold: int) -> Path:
    """Where one unit's result lives."""
    return out_dir / "results" / task / protocol / init_label(init) / f"r{repeat}_fold{fold}.json"


def folds_path(out_dir: Path, task: str, repeat: int) -> Path:
    """Where a repeat's folds of a task are written."""
    return out_dir / "folds" / f"{task}_r{repeat}.json"


def unit_seed(config: EvaluateConfig, repeat: int, fold: int) -> int:
    """The training seed of fold ``fold`` of repeat ``repeat`` (the same for every init and protocol)."""
    return config.seed + 1000 * repeat + fold


def task_folds(
    layout: Layout, refs: list[SampleRef], task: TaskConfig, n_folds: int, seed: int
) -> tuple[list[list[str]], str, list[str]]:
    """The task's folds (lists of sources), their origin, and sources left out of them."""
    official = layout.official_folds() if task.folds != "generated" else None
    if task.folds == "official" and official is None:
        raise ValueError(
            f"task {task.name!r}: folds: official, but layout {layout.name!r} at {layout.root} ships no folds; use folds: auto"
        )
    if official is not None:
        folds, excluded = restrict_official(official, refs)
        if excluded:
            log.info("%s: %d samples outside the official folds are not used", task.name, len(excluded))
        return folds, f"official ({layout.name})", excluded
    stratify = task.task_kind.stratify
    folds = make_folds(refs, n_folds, seed, stratify=stratify)
    return folds, f"generated (seed {seed}, {'stratified, ' if stratify else ''}grouped by patient/video)", []


def prepare_task(task: TaskConfig) -> tuple[Layout, list[SampleRef], LoadedTask, list[str]]:
    """Index and decode a task (the kind decides what is loaded and kept)."""
    layout = get_layout(task.layout, task.root, **task.layout_options)
    refs = layout.index()
    if not refs:
        raise ValueError(f"task {task.name!r}: layout {task.layout!r} found no samples under {task.root}")
    refs, data, class_names = task.task_kind.prepare(layout, refs, task)
    return layout, refs, data, class_names


def split_unit(
    config: EvaluateConfig, unit: Unit, folded: FoldedTask, seed: int
) -> tuple[list[SampleRef], list[SampleRef], list[SampleRef]]:
    """A unit's (train, validation, test) refs: inner validation split, then the label-fraction subset of train."""
    task = unit.task
    test = set(folded.folds[unit.fold])
    used = {s for fold in folded.folds for s in fold}
    train_refs, test_refs = (
        [r for r in folded.refs if r.source in used and r.source not in test],
        [r for r in folded.refs if r.source in test],
    )
    stratify = task.task_kind.stratify
    if config.selection == "test_fold_best_epoch":
        val_refs = test_refs
    else:
        train_refs, val_refs = inner_split(train_refs, config.val_fraction, seed, stratify=stratify)
    return subsample(train_refs, task.label_fraction, seed, stratify=stratify), val_refs, test_refs


def _record(config: EvaluateConfig, unit: Unit, seed: int, parts: tuple[list, list, list]) -> dict:
    return {
        "task": unit.task.name,
        "protocol": unit.protocol,
        "init": unit.init,
        "init_label": init_label(unit.init),
        "repeat": unit.repeat,
        "fold": unit.fold,
        "seed": seed,
        "selection": config.selection,
        "label_fraction": unit.task.label_fraction,
        "n_train": len(parts[0]),
        "n_val": len(parts[1]),
        "n_test": len(parts[2]),
    }


def run_finetune(
    config: EvaluateConfig, unit: Unit, folded: FoldedTask, out_dir: Path
) -> tuple[dict, torch.Tensor, np.ndarray]:
    """Fit, select and test one fine-tuning unit; returns its record, test predictions and test indices."""
    task, data = unit.task, folded.data
    seed = unit_seed(config, unit.repeat, unit.fold)
    seed_everything(seed, workers=True, verbose=False)
    parts = split_unit(config, unit, folded, seed)
    indices = [data.index_of([r.source for r in part]) for part in parts]
    datamodule = FoldDataModule(
        data,
        *indices,
        batch_size=task.batch_size,
        crop_scale=task.crop_scale,
        num_workers=config.num_workers,
        seed=seed,
    )
    kind = task.task_kind
    module = FinetuneModule(
        kind,
        init=unit.init,
        head=task.head,
        num_classes=max(2, len(folded.class_names)),
        arch=config.arch,
        library=config.library,
        mode=task.mode,
        trainable_stages=task.trainable_stages,
        optimizer=task.optimizer,
        lr=task.lr,
        weight_decay=task.weight_decay,
        fpn_channels=task.fpn_channels,
        image_size=task.image_size,
        foreground_prior=task.foreground_prior,
        compile=config.compile,
    )
    label = init_label(unit.init)
    selector = BestWeights(module.monitor)
    callbacks = [selector]
    if task.patience is not None:
        callbacks.append(EarlyStopping(monitor=module.monitor, mode="max", patience=task.patience))
    trainer = Trainer(
        max_epochs=task.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        precision=config.precision,
        logger=TensorBoardLogger(
            save_dir=out_dir / "tensorboard", name=task.name, version=f"{label}-r{unit.repeat}-fold{unit.fold}"
        ),
        callbacks=callbacks,
        enable_progress_bar=config.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule)
    selector.restore(module)
    trainer.test(module, datamodule, verbose=False)
    record = _record(config, unit, seed, parts)
    record.update(
        best_epoch=selector.best_epoch,
        best_val=selector.best_score,
        epochs_run=trainer.current_epoch,
    )
    return record, torch.cat(module.test_outputs["prediction"]), torch.cat(module.test_outputs["index"]).numpy()


def frozen_features(
    config: EvaluateConfig, task: TaskConfig, init: str, data: LoadedTask, out_dir: Path
) -> list[torch.Tensor]:
    """The frozen encoder's stage outputs of every sample of the task, extracted once and cached."""
    path = out_dir / "features" / task.name / f"{init_label(init)}.pt"
    if path.is_file():
        cached = torch.load(path, map_location="cpu", weights_only=True)
        if cached["sources"] == data.sources:
            return cached["features"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # a random init is the same network for every task and protocol
        backbone, _, mean, std = build_init(init, BackboneSpec(config.arch, config.library))
    started = time.time()
    features = extract_features(StagedEncoder(backbone, mean, std), data.images)
    log.info(
        "%s | %s: frozen features of %d images in %.1f s",
        task.name,
        init_label(init),
        len(data.images),
        time.time() - started,
    )
    with atomic.atomic_path(path) as temporary:
        torch.save({"sources": data.sources, "features": features}, temporary)
    return features


def run_frozen(
    config: EvaluateConfig, unit: Unit, folded: FoldedTask, features: list[torch.Tensor]
) -> tuple[dict, torch.Tensor, np.ndarray]:
    """Fit the protocol's probe on the fold's frozen training features and predict its test fold."""
    task, data = unit.task, folded.data
    seed = unit_seed(config, unit.repeat, unit.fold)
    train, val, test = split_unit(config, unit, folded, seed)
    fit_refs = (
        train if config.selection == "test_fold_best_epoch" else train + val
    )  # no selection: validation trains too
    fit_index, test_index = data.index_of([r.source for r in fit_refs]), data.index_of([r.source for r in test])
    prediction = task.task_kind.frozen_predict(
        unit.protocol, features, data, fit_index, test_index, task, max(2, len(folded.class_names)), seed
    )
    return _record(config, unit, seed, (fit_refs, [], test)), prediction, test_index


def run_unit(config: EvaluateConfig, unit: Unit, folded: FoldedTask, out_dir: Path) -> dict:
    """One (task, protocol, init, repeat, fold): train, test, score; returns its result record."""
    started = time.time()
    if unit.protocol == "finetune":
        record, prediction, index = run_finetune(config, unit, folded, out_dir)
    else:
        features = frozen_features(config, unit.task, unit.init, folded.data, out_dir)
        record, prediction, index = run_frozen(config, unit, folded, features)
    kind = unit.task.task_kind
    record.update(kind.score(prediction, index, folded.data, folded.class_names))
    if config.overlay_cases:
        folder = result_path(out_dir, unit.task.name, unit.protocol, unit.init, unit.repeat, unit.fold).parent
        kind.save_cases(
            folder,
            f"r{unit.repeat}_fold{unit.fold}",
            folded.data,
            index,
            prediction,
            record,
            config.overlay_cases,
        )
    record["seconds"] = round(time.time() - started, 1)
    return record


def write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (a killed run never leaves a half-written result)."""
    atomic.write_json(path, payload, indent=1)


def evaluate(config: EvaluateConfig) -> Path | None:
    """Run every unit not yet on disk, then write the report; returns ``report.json``'s path.

    A run restricted by ``only_tasks`` / ``only_folds`` (one SLURM array task)
    writes its results only and returns None: the unrestricted run that follows
    skips every finished unit and writes the report.
    """
    from anaus_pl.evaluation.report import build_report

    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial_run = config.only_tasks is not None or config.only_folds is not None
    if not partial_run:
        write_json(out_dir / "config.json", asdict(config))
    tasks = [t for t in config.tasks if config.only_tasks is None or t.name in config.only_tasks]
    folds_wanted = range(config.n_folds) if config.only_folds is None else sorted(set(config.only_folds))
    units = [
        (task, r, protocol, init)
        for task in tasks
        for r in range(config.repeats)
        for protocol in task.protocols
        for init in config.inits
    ]
    progress = tqdm(total=len(units) * len(folds_wanted), desc="evaluate", unit="fold")
    for task in tasks:
        loaded = None
        for repeat in range(config.repeats):
            pending = [
                (p, i, k)
                for p in task.protocols
                for i in config.inits
                for k in folds_wanted
                if not result_path(out_dir, task.name, p, i, repeat, k).is_file()
            ]
            if not pending and folds_path(out_dir, task.name, repeat).is_file():
                progress.update(len(task.protocols) * len(config.inits) * len(folds_wanted))
                continue
            loaded = loaded or prepare_task(task)
            layout, refs, data, class_names = loaded
            fold_seed = config.seed + repeat
            folds, origin, excluded = task_folds(layout, refs, task, config.n_folds, fold_seed)
            save_folds(
                folds_path(out_dir, task.name, repeat),
                folds,
                origin,
                None if origin.startswith("official") else fold_seed,
                excluded,
            )
            for protocol in task.protocols:
                for init in config.inits:
                    for k in (k for k in range(len(folds)) if config.only_folds is None or k in config.only_folds):
                        path = result_path(out_dir, task.name, protocol, init, repeat, k)
                        where = (
                            f"{task.name} | {protocol} | {init_label(init)} | repeat {repeat} fold {k + 1}/{len(folds)}"
                        )
                        progress.set_postfix_str(where)
                        if not path.is_file():
                            record = run_unit(
                                config,
                                Unit(task, protocol, init, repeat, k),
                                FoldedTask(refs, folds, data, class_names),
                                out_dir,
                            )
                            write_json(path, record)
                            headline = task.task_kind.headline
                            log.info(
                                "%s: %s %.3f (%.1f s)", where, headline, record["metrics"][headline], record["seconds"]
                            )
                        progress.update()
    progress.close()
    if partial_run:
        log.info(
            "restricted run (only_tasks=%s, only_folds=%s): results written, report left to a full run",
            config.only_tasks,
            config.only_folds,
        )
        return None
    return build_report(out_dir, config)
