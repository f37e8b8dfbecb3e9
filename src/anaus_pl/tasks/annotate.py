"""Stage 2 "annotate": an LP-SAM labels unlabeled frames (inference only).

:class:`AnnotateTask` depends on nothing but the predictor interface of
``docs/INTERFACES.md``: ``load(checkpoint_path, map_location) -> predictor``
with ``.vocabulary``, ``.image_size`` and ``.predict(images) ->
(probabilities, predicted_iou)``. The loader is named by a dotted path
(default: LP-SAM's ``load_lpsam``), so any segmenter with that interface can
annotate, and tests use a small stand-in.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule

from anaus_pl.checkpoints import check_checkpoint
from anaus_pl.data.vocabulary import AnatomyVocabulary
from anaus_pl.models.postprocess import PostProcess, label_maps

DEFAULT_LOADER = "anaus_pl.tasks.adapt:load_lpsam"


@dataclass
class AnnotatedBatch:
    """What one inference batch gives the store writer (numpy, on the CPU)."""

    images: np.ndarray  # uint8 (B, S, S) letterboxed frames
    masks: np.ndarray  # uint8 (B, S, S) label maps
    valid_hw: np.ndarray  # int32 (B, 2)
    scores: np.ndarray  # float32 (B, C): the predictor's per-class confidence (LP-SAM's predicted IoU)
    sources: list[str]
    keep: np.ndarray  # bool (B,): False for frames dropped as empty
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, error) of frames that did not decode


def check_predictor_checkpoint(loader: str, checkpoint: str) -> None:
    """Fail fast, without loading anything, on a missing checkpoint (and, for LP-SAM, on an unreadable one)."""
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(
            f"{checkpoint}: LP-SAM checkpoint not found; run `make adapt` "
            "(anaus-pl fit --config stages/adapt.yaml) or set model.init_args.lpsam_checkpoint"
        )
    if loader == DEFAULT_LOADER:
        check_checkpoint(checkpoint, "adapt")


def load_predictor(loader: str, checkpoint: str, map_location: str = "cpu") -> torch.nn.Module:
    """Import ``module:function`` and call it on ``checkpoint``; errors name the file and the fix."""
    check_predictor_checkpoint(loader, checkpoint)
    module_name, _, function = loader.partition(":")
    if not function:
        raise ValueError(f"model.init_args.predictor_loader must be 'module:function', got {loader!r}")
    return getattr(importlib.import_module(module_name), function)(checkpoint, map_location=map_location)


class AnnotateTask(LightningModule):
    """Runs the predictor on letterboxed frames and post-processes its output into label maps.

    Args:
        lpsam_checkpoint: the stage-1 checkpoint (loaded in :meth:`setup`, on every rank).
        postprocess: thresholds, overlap, region filters, empty-frame policy.
        autocast: ``auto`` uses bf16 on GPUs that support it, else fp16 on GPUs, none on CPU.
        predictor_loader: ``module:function`` that loads the predictor from the checkpoint.
    """

    def __init__(
        self,
        lpsam_checkpoint: str,
        postprocess: PostProcess | None = None,
        autocast: Literal["auto", "bf16", "fp16", "off"] = "auto",
        predictor_loader: str = DEFAULT_LOADER,
    ) -> None:
        super().__init__()
        self.lpsam_checkpoint = lpsam_checkpoint
        self.postprocess = postprocess or PostProcess()
        self.autocast = autocast
        self.predictor_loader = predictor_loader
        self.predictor: torch.nn.Module | None = None

    def load_predictor(self) -> None:
        """Load the predictor from its checkpoint (once; every rank loads its own)."""
        if self.predictor is None:
            predictor = load_predictor(self.predictor_loader, self.lpsam_checkpoint)
            predictor.eval().requires_grad_(False)
            self.postprocess.thresholds(len(predictor.vocabulary))  # fail before any frame is decoded
            self.predictor = predictor

    def setup(self, stage: str) -> None:
        self.load_predictor()

    def _loaded(self) -> torch.nn.Module:
        if self.predictor is None:
            raise RuntimeError("AnnotateTask.setup() has not loaded the predictor yet")
        return self.predictor

    @property
    def vocabulary(self) -> AnatomyVocabulary:
        return self._loaded().vocabulary

    @property
    def image_size(self) -> int:
        return int(self._loaded().image_size)

    def autocast_dtype(self) -> torch.dtype | None:
        """The mixed-precision dtype for this device, or ``None`` for full precision."""
        explicit = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
        if self.autocast in explicit:
            return explicit[self.autocast]
        if self.device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``uint8 (B, S, S)`` frames -> float32 probabilities ``(B, C, S, S)`` and confidences ``(B, C)``."""
        x = images.to(self.device, non_blocking=True).float().div_(255.0).unsqueeze(1)
        dtype = self.autocast_dtype()
        context = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with context:
            probabilities, confidence = self._loaded().predict(x)
        return probabilities.float(), confidence.float()

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> AnnotatedBatch:
        """Label one batch; ``batch["classes"]`` (``bool (B, C)``, optional) limits each frame to its input's classes."""
        images, valid_hw, allowed = batch["images"], batch["valid_hw"], batch.get("classes")
        if len(images):
            probabilities, confidence = self(images)
            masks = label_maps(probabilities, valid_hw, self.postprocess, allowed)
            if allowed is not None:  # a class the input cannot hold was not looked for: no confidence
                confidence = confidence * allowed.to(confidence.device)
            scores = confidence.cpu().numpy().astype(np.float32)
        else:
            c, s = len(self.vocabulary), images.shape[-1]
            masks, scores = np.zeros((0, s, s), np.uint8), np.zeros((0, c), np.float32)
        keep = np.ones(len(masks), bool) if self.postprocess.keep_empty else masks.reshape(len(masks), -1).any(axis=1)
        return AnnotatedBatch(
            images=images.cpu().numpy(),
            masks=masks,
            valid_hw=valid_hw.cpu().numpy().astype(np.int32),
            scores=scores,
            sources=list(batch["sources"]),
            keep=keep,
            skipped=list(batch["skipped"]),
        )
