"""Writes annotated frames into the HDF5 anatomy store during ``trainer.predict``.

Each rank appends to its own fresh shard ``<store>.a<run>.rank<r>.partial``
in batches of ``flush_frames`` (each append is committed and flushed). When
every rank is done, rank 0 merges all shards (of this and earlier, killed
runs) into ``<store>`` in input order, then writes ``summary.json``,
``preview.png`` and the TensorBoard preview next to it. A rerun skips every
source any shard has committed, so it only finishes the rest.

Rank 0 holds the store's :class:`~anaus_pl.data.anatomy_store.StoreLock` for
the whole run, so a second run on the same store fails at once. The store and
its shards record ``config_sha256`` (:func:`config_sha256`); a run under another
configuration refuses them unless given ``--overwrite true``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.loggers import TensorBoardLogger

from anaus_pl.atomic import atomic_path, write_json
from anaus_pl.data.anatomy_store import (
    AnatomyStore,
    AnatomyStoreWriter,
    StoreError,
    StoreLock,
    completed_sources,
    merge_shards,
    next_attempt,
    partial_path,
    recorded_config_hashes,
    shard_path,
    shard_paths,
)
from anaus_pl.data.preview import class_colours, overlay, preview_figure, spread_indices
from anaus_pl.logs import configure_logging
from anaus_pl.tasks.annotate import AnnotatedBatch

log = logging.getLogger(__name__)


@dataclass
class StoreOptions:
    """Where and how the anatomy store is written.

    Args:
        path: the finished store (``.h5``); ``summary.json`` and ``preview.png`` go next to it.
        flush_frames: frames buffered before one committed append (a kill loses at most this many).
        preview_frames: frames shown in the preview grid and TensorBoard.
    """

    path: str = "runs/annotate/default/anatomy.h5"
    flush_frames: int = 256
    preview_frames: int = 16


RUNTIME_SETTINGS = ("batch_size", "num_workers")  # data settings that change speed, never the store's content


def config_sha256(config: Any) -> str | None:
    """sha256 of the resolved configuration's ``model`` and ``data`` sections (less :data:`RUNTIME_SETTINGS`).

    ``config`` is the YAML text LightningCLI resolved; ``None`` (annotate called
    from Python) gives ``None``, and then no configuration is checked.
    """
    if not config:
        return None
    loaded = yaml.safe_load(config) if isinstance(config, str) else dict(config)
    section = loaded.get("annotate", loaded)
    data = dict(section.get("data") or {})
    data["init_args"] = {k: v for k, v in (data.get("init_args") or {}).items() if k not in RUNTIME_SETTINGS}
    text = json.dumps({"model": section.get("model"), "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_config(path: Path, expected: str | None) -> None:
    """Refuse a store or shard of ``path`` recorded under another configuration than ``expected``."""
    if expected is None:
        return
    for file, recorded in recorded_config_hashes(path).items():
        if recorded != expected:
            raise StoreError(
                f"{file}: written under another configuration (config_sha256 {recorded[:12]}, this run "
                f"{expected[:12]}); rerun with --overwrite true to replace the store, or set store.path to a new file"
            )


def remove_outputs(path: Path) -> None:
    """Delete the store ``path``, its shards and partial file, and its summary and preview (``--overwrite``)."""
    for file in [
        path,
        partial_path(path),
        *shard_paths(path),
        path.with_name("summary.json"),
        path.with_name("preview.png"),
    ]:
        file.unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class AnatomyStoreCallback(BasePredictionWriter):
    """The store writer of the annotate stage (see the module docstring)."""

    def __init__(self, options: StoreOptions, config: Any = None, overwrite: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.options = options
        self.path = Path(options.path)
        self.config = config or {}
        self.config_hash = config_sha256(config)
        self.overwrite = overwrite
        self._lock = StoreLock(self.path)
        self.summary: dict[str, Any] = {}
        self._writer: AnatomyStoreWriter | None = None
        self._buffer: list[AnnotatedBatch] = []
        self._skipped: list[str] = []
        self._counts = {"processed": 0, "skipped": 0}
        self._write_seconds = 0.0
        self._start = 0.0
        self._resumed = 0
        self._attempt = 0

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        configure_logging()
        error = None
        if trainer.is_global_zero:
            try:
                self._lock.acquire()
                if self.overwrite:
                    remove_outputs(self.path)
                check_config(self.path, self.config_hash)
            except StoreError as caught:
                error = str(caught)
        error = trainer.strategy.broadcast(error, src=0)  # every rank stops, not only rank 0
        if error:
            self._lock.release()
            raise StoreError(error)
        done = completed_sources(self.path)
        self._attempt = next_attempt(self.path)
        trainer.strategy.barrier("annotate-resume")  # every rank read the shards before any rank creates one
        self._resumed = len(done)
        if done:
            log.info("resuming %s: %d frames already done", self.path, len(done))
        trainer.datamodule.skip_sources(done)

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        attrs = {
            "lpsam_checkpoint": str(pl_module.lpsam_checkpoint),
            "lpsam_sha256": file_sha256(pl_module.lpsam_checkpoint),
            "config": self.config,
            **({"config_sha256": self.config_hash} if self.config_hash else {}),
        }
        self._writer = AnatomyStoreWriter(
            self.path,
            pl_module.vocabulary.names,
            pl_module.image_size,
            attrs,
            partial=shard_path(self.path, trainer.global_rank, self._attempt),
        )
        self._start = time.perf_counter()

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: AnnotatedBatch,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        for source, error in prediction.skipped:  # the error names the file
            log.warning("skipped %s", error if source.split("#")[0] in error else f"{source}: {error}")
        self._counts["processed"] += len(prediction.sources)
        self._counts["skipped"] += len(prediction.skipped)
        self._buffer.append(prediction)
        self._skipped += [source for source, _ in prediction.skipped]
        if sum(len(b.sources) for b in self._buffer) >= self.options.flush_frames:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer and not self._skipped:
            return
        started = time.perf_counter()
        batches = [b for b in self._buffer if b.sources]  # a batch of only undecodable frames has no arrays to join
        keep = np.concatenate([b.keep for b in batches]) if batches else np.zeros(0, bool)
        sources = [s for b in batches for s in b.sources]

        def kept(name: str) -> np.ndarray:
            return np.concatenate([getattr(b, name) for b in batches])[keep] if batches else np.zeros(0)

        assert self._writer is not None
        self._writer.append(
            kept("images"),
            kept("masks"),
            kept("valid_hw"),
            kept("scores"),
            [s for s, k in zip(sources, keep) if k],
            dropped=[s for s, k in zip(sources, keep) if not k],
            skipped=self._skipped,
        )
        self._buffer, self._skipped = [], []
        self._write_seconds += time.perf_counter() - started

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush()
        assert self._writer is not None
        self._writer.close()
        inference_seconds = time.perf_counter() - self._start
        totals = trainer.strategy.reduce(
            torch.tensor(
                [self._counts["processed"], self._counts["skipped"], self._write_seconds],
                dtype=torch.float64,
                device=pl_module.device,
            ),
            reduce_op="sum",
        )
        trainer.strategy.barrier("annotate-merge")
        if trainer.is_global_zero:
            self._finish(trainer, pl_module, totals.tolist(), inference_seconds)
        trainer.strategy.barrier("annotate-done")
        self._lock.release()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._writer is not None:
            self._writer.close()
        self._lock.release()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Close the shard (its committed frames stay for the rerun) and release the store: Lightning skips teardown."""
        self.teardown(trainer, pl_module, "predict")

    def _finish(
        self, trainer: Trainer, pl_module: LightningModule, totals: list[float], inference_seconds: float
    ) -> None:
        processed, skipped_now, write_seconds = int(totals[0]), int(totals[1]), totals[2]
        frames = trainer.datamodule.frames()
        started = time.perf_counter()
        counters = merge_shards(
            self.path,
            shard_paths(self.path),
            order=frames.sources(),
            attrs={
                "frames_in": len(frames),
                "lpsam_checkpoint": str(pl_module.lpsam_checkpoint),
                "lpsam_sha256": file_sha256(pl_module.lpsam_checkpoint),
                "config": self.config,
            },
        )
        merge_seconds = time.perf_counter() - started
        classes = list(pl_module.vocabulary.names)
        written = counters["frames_written"]
        valid = max(1, counters["valid_pixels"])
        self.summary = {
            "store": str(self.path),
            "frames_in": len(frames),
            "frames_already_done": self._resumed,
            "frames_processed": processed,
            "frames_written": written,
            "frames_skipped": counters["frames_skipped"],
            "frames_dropped_empty": counters["frames_dropped_empty"],
            "coverage": {
                name: {
                    "frames": round(float(counters["class_frames"][k]) / max(1, written), 4),
                    "area": round(float(counters["class_pixels"][k]) / valid, 4),
                }
                for k, name in enumerate(classes)
            },
            "frames_per_second": round(processed / max(inference_seconds, 1e-9), 2),
            "seconds": {
                "inference": round(inference_seconds, 2),
                "hdf5_append": round(write_seconds / max(1, trainer.world_size), 3),
                "merge": round(merge_seconds, 2),
            },
            "world_size": trainer.world_size,
            "skipped_this_run": skipped_now,
        }
        write_json(self.path.with_name("summary.json"), self.summary)
        coverage = ", ".join(f"{n} {c['frames']:.0%}" for n, c in self.summary["coverage"].items())
        log.info(
            "annotate: %d frames in, %d written, %d skipped, %d dropped empty; coverage %s; %.1f frames/s -> %s",
            len(frames),
            written,
            self.summary["frames_skipped"],
            self.summary["frames_dropped_empty"],
            coverage,
            self.summary["frames_per_second"],
            self.path,
        )
        self._write_preview(trainer)

    def _write_preview(self, trainer: Trainer) -> None:
        store = AnatomyStore(self.path)
        try:
            indices = spread_indices(len(store), self.options.preview_frames)
            if not indices:
                return
            figure = preview_figure(store, indices)
            with atomic_path(self.path.with_name("preview.png")) as temporary:
                figure.savefig(temporary, dpi=100)
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_figure("annotate/preview", figure, global_step=0)
                    colours = class_colours(len(store.classes))
                    for k, index in enumerate(indices):
                        item = store[index]
                        h, w = item["valid_hw"]
                        image = overlay(item["image"][:h, :w], item["mask"][:h, :w], colours)
                        logger.experiment.add_image(f"annotate/frame_{k:02d}", image, global_step=0, dataformats="HWC")
                    logger.experiment.flush()
        finally:
            store.close()
