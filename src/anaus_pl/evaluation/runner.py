"""The k-fold evaluation loop: task x init x fold, resumable, then the report.

Each (task, init, fold) unit fits :class:`FinetuneModule` on the fold's
training part, selects the best epoch on an inner validation split (or on the
test fold in the paper-compatible mode), tests that checkpoint once on the
held-out fold and writes ``results/<task>/<init>/fold<k>.json``. Units whose
file exists are skipped, so a killed evaluation resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from tqdm.auto import tqdm

from anaus_pl import atomic
from anaus_pl.checkpoints import load_checkpoint
from anaus_pl.data.datamodules.finetune import FoldDataModule, LoadedTask, foreground_ids, load_task
from anaus_pl.data.layouts import get_layout
from anaus_pl.data.layouts.base import Layout, SampleRef
from anaus_pl.evaluation.config import EvaluateConfig, TaskConfig
from anaus_pl.evaluation.folds import inner_split, make_folds, restrict_official, save_folds, subsample
from anaus_pl.evaluation.metrics import classification_metrics, segmentation_metrics
from anaus_pl.models.downstream import init_label
from anaus_pl.tasks.finetune import FinetuneModule

log = logging.getLogger("anaus_pl.evaluate")


def result_path(out_dir: Path, task: str, init: str, fold: int) -> Path:
    """Where one unit's result lives."""
    return out_dir / "results" / task / init_label(init) / f"fold{fold}.json"


def task_folds(layout: Layout, refs: list[SampleRef], task: TaskConfig, n_folds: int, seed: int) -> tuple[list[list[str]], str, list[str]]:
    """The task's folds (lists of sources), their origin, and sources left out of them."""
    official = layout.official_folds() if task.folds != "generated" else None
    if task.folds == "official" and official is None:
        raise ValueError(f"task {task.name!r}: folds: official, but layout {layout.name!r} at {layout.root} ships no folds; use folds: auto")
    if official is not None:
        folds, excluded = restrict_official(official, refs)
        if excluded:
            log.info("%s: %d samples outside the official folds are not used", task.name, len(excluded))
        return folds, f"official ({layout.name})", excluded
    folds = make_folds(refs, n_folds, seed, stratify=task.kind == "classification")
    return folds, f"generated (seed {seed}, {'stratified, ' if task.kind == 'classification' else ''}grouped by patient/video)", []


def prepare_task(task: TaskConfig) -> tuple[Layout, list[SampleRef], LoadedTask, list[str]]:
    """Index and decode a task; drop empty-mask images when the task excludes them."""
    layout = get_layout(task.layout, task.root, **task.layout_options)
    refs = layout.index()
    if not refs:
        raise ValueError(f"task {task.name!r}: layout {task.layout!r} found no samples under {task.root}")
    foreground = foreground_ids(layout, task.foreground) if task.kind == "segmentation" else [1]
    data = load_task(layout, refs, task.image_size, task.kind, foreground, task.name)
    class_names = list(layout.class_names) if task.kind == "classification" else ["background", task.foreground[0] if task.foreground else "foreground"]
    if task.kind == "segmentation" and task.empty_masks == "exclude":
        keep = np.flatnonzero(data.masks.reshape(len(refs), -1).any(1))
        if len(keep) < len(refs):
            log.info("%s: %d images with empty masks excluded (empty_masks: exclude)", task.name, len(refs) - len(keep))
        refs = [refs[i] for i in keep]
        data = LoadedTask([data.sources[i] for i in keep], data.images[keep], data.masks[keep], None, data.valid_hw[keep])
    return layout, refs, data, class_names


def _fold_refs(refs: list[SampleRef], folds: list[list[str]], k: int) -> tuple[list[SampleRef], list[SampleRef]]:
    test = set(folds[k])
    used = {s for fold in folds for s in fold}
    return [r for r in refs if r.source in used and r.source not in test], [r for r in refs if r.source in test]


def run_unit(config: EvaluateConfig, task: TaskConfig, init: str, k: int, refs: list[SampleRef], folds: list[list[str]],
             data: LoadedTask, class_names: list[str], out_dir: Path) -> dict:
    """Fit, select and test one (task, init, fold); returns its result record."""
    started = time.time()
    seed_everything(config.seed + k, workers=True, verbose=False)
    train_refs, test_refs = _fold_refs(refs, folds, k)
    if config.selection == "test_fold_best_epoch":
        val_refs = test_refs
    else:
        train_refs, val_refs = inner_split(train_refs, config.val_fraction, config.seed + k, stratify=task.kind == "classification")
    train_refs = subsample(train_refs, task.label_fraction, config.seed + k, stratify=task.kind == "classification")
    indices = [data.index_of([r.source for r in part]) for part in (train_refs, val_refs, test_refs)]
    datamodule = FoldDataModule(data, *indices, batch_size=task.batch_size, crop_scale=task.crop_scale,
                                num_workers=config.num_workers, seed=config.seed + k)
    module = FinetuneModule(init=init, head=task.head, num_classes=max(2, len(class_names)), arch=config.arch, library=config.library,
                            mode=task.mode, trainable_stages=task.trainable_stages, optimizer=task.optimizer, lr=task.lr,
                            weight_decay=task.weight_decay, fpn_channels=task.fpn_channels, image_size=task.image_size)
    label = init_label(init)
    checkpoints = out_dir / "checkpoints" / task.name / label / f"fold{k}"
    selector = ModelCheckpoint(dirpath=checkpoints, filename="best", monitor=module.monitor, mode="max", save_top_k=1,
                               save_weights_only=True, enable_version_counter=False)
    callbacks = [selector]
    if task.patience is not None:
        callbacks.append(EarlyStopping(monitor=module.monitor, mode="max", patience=task.patience))
    trainer = Trainer(max_epochs=task.epochs, accelerator=config.accelerator, devices=config.devices, precision=config.precision,
                      logger=TensorBoardLogger(save_dir=out_dir / "tensorboard", name=task.name, version=f"{label}-fold{k}"),
                      callbacks=callbacks, enable_progress_bar=config.progress_bar, enable_model_summary=False,
                      num_sanity_val_steps=0, log_every_n_steps=1, enable_checkpointing=True)
    trainer.fit(module, datamodule)
    trainer.test(module, datamodule, ckpt_path="best", verbose=False)
    index = torch.cat(module.test_outputs["index"]).numpy()
    prediction = torch.cat(module.test_outputs["prediction"])
    record = {
        "task": task.name, "init": init, "init_label": label, "fold": k, "selection": config.selection,
        "best_epoch": _best_epoch(selector), "best_val": float(selector.best_model_score or float("nan")),
        "epochs_run": trainer.current_epoch, "n_train": len(train_refs), "label_fraction": task.label_fraction, "n_val": len(val_refs), "n_test": len(test_refs),
        "seed": config.seed + k,
    }
    if task.kind == "classification":
        targets = torch.from_numpy(data.labels[index])
        record["metrics"] = classification_metrics(prediction, targets, class_names)
        record["class_names"] = class_names
        record["predictions"] = [{"source": data.sources[i], "label": int(t), "predicted": int(p.argmax())}
                                 for i, t, p in zip(index, targets, prediction)]
    else:
        masks = prediction.numpy().astype(bool)
        for row, i in enumerate(index):  # letterbox padding is no image: predictions there do not count
            h, w = data.valid_hw[i]
            masks[row, h:, :] = False
            masks[row, :, w:] = False
        truths = data.masks[index].astype(bool)
        means, per_image = segmentation_metrics(torch.from_numpy(masks), torch.from_numpy(truths))
        record["metrics"] = means
        record["per_image"] = {"source": [data.sources[i] for i in index], **per_image}
        _save_cases(out_dir, task.name, label, k, data, index, masks, per_image["dice"], config.overlay_cases)
    record["seconds"] = round(time.time() - started, 1)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return record


def _best_epoch(selector: ModelCheckpoint) -> int | None:
    if not selector.best_model_path:
        return None
    checkpoint = load_checkpoint(selector.best_model_path, "finetune")
    return int(checkpoint.get("epoch", -1))


def _save_cases(out_dir: Path, task: str, label: str, k: int, data: LoadedTask, index: np.ndarray, masks: np.ndarray,
                dice: list[float], count: int) -> None:
    """The fold's best and worst images by Dice, for the overlay figure."""
    order = np.argsort(dice, kind="stable")
    folder = out_dir / "results" / task / label
    folder.mkdir(parents=True, exist_ok=True)
    chosen = np.unique(np.concatenate([order[:count], order[-count:]]))
    with atomic.atomic_path(folder / f"fold{k}_cases.npz") as temporary:  # the report reads it back
        np.savez_compressed(temporary, image=data.images[index[chosen]],
                            truth=data.masks[index[chosen]], prediction=masks[chosen], dice=np.asarray(dice)[chosen],
                            source=np.asarray([data.sources[i] for i in index[chosen]]))


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
    total = len(tasks) * len(config.inits) * len(folds_wanted)
    progress = tqdm(total=total, desc="evaluate", unit="fold")
    folds_by_task = {}
    for task in tasks:
        pending = [(init, k) for init in config.inits for k in folds_wanted
                   if not result_path(out_dir, task.name, init, k).is_file()]
        if not pending and (out_dir / "folds" / f"{task.name}.json").is_file():
            folds_by_task[task.name] = json.loads((out_dir / "folds" / f"{task.name}.json").read_text())
            progress.update(len(config.inits) * len(folds_wanted))
            continue
        layout, refs, data, class_names = prepare_task(task)
        folds, origin, excluded = task_folds(layout, refs, task, config.n_folds, config.seed)
        save_folds(out_dir / "folds" / f"{task.name}.json", folds, origin, None if origin.startswith("official") else config.seed, excluded)
        folds_by_task[task.name] = json.loads((out_dir / "folds" / f"{task.name}.json").read_text())
        for init in config.inits:
            for k in (k for k in range(len(folds)) if config.only_folds is None or k in config.only_folds):
                path = result_path(out_dir, task.name, init, k)
                progress.set_postfix_str(f"{task.name} | {init_label(init)} | fold {k + 1}/{len(folds)}")
                if path.is_file():
                    log.info("%s | %s | fold %d: done before, skipped", task.name, init_label(init), k + 1)
                else:
                    record = run_unit(config, task, init, k, refs, folds, data, class_names, out_dir)
                    write_json(path, record)
                    headline = "accuracy" if task.kind == "classification" else "dice"
                    log.info("%s | %s | fold %d/%d: %s %.3f (%.0f s)", task.name, init_label(init), k + 1, len(folds),
                             headline, record["metrics"][headline], record["seconds"])
                progress.update()
    progress.close()
    if partial_run:
        log.info("restricted run (only_tasks=%s, only_folds=%s): results written, report left to a full run",
                 config.only_tasks, config.only_folds)
        return None
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return build_report(out_dir, config, folds_by_task)
