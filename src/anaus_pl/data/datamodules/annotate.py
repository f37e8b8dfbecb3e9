"""Frames for the annotate stage: decode in DataLoader workers, letterbox, skip what does not decode."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from anaus_pl.data.frame_sources import FrameDecoder, FrameInput, FrameRef, FrameTable, check_inputs, index_inputs
from anaus_pl.data.io import FrameReadError
from anaus_pl.data.letterbox import letterbox

log = logging.getLogger(__name__)

MIN_SIDE = 32  # pixels: smaller frames are thumbnails or placeholders
MAX_ASPECT_RATIO = 8.0  # long side / short side: ultrasound sectors and rectangles stay well below


class LetterboxedFrames(Dataset):
    """Decoded, letterboxed frames; a frame that fails for any reason becomes a skip record naming it.

    Frames whose shorter side is below ``min_side`` pixels, or whose long/short
    side ratio exceeds ``max_aspect_ratio``, are skipped too (icons, strips,
    1x1 placeholders are no ultrasound frame).

    The frames are held as a :class:`FrameTable` (numpy arrays), never as a list
    of objects, so forked workers' memory does not grow with the frame count.

    ``class_masks`` (``bool (inputs, C)``, optional): the classes each input's
    frames may hold; every decoded frame then carries its input's row as ``classes``.
    """

    def __init__(
        self,
        refs: FrameTable | Sequence[FrameRef],
        decoder: FrameDecoder,
        size: int,
        class_masks: np.ndarray | None = None,
        min_side: int = MIN_SIDE,
        max_aspect_ratio: float = MAX_ASPECT_RATIO,
    ) -> None:
        self.refs = refs if isinstance(refs, FrameTable) else FrameTable.from_refs(refs)
        self.decoder = decoder
        self.size = size
        self.class_masks = class_masks
        self.min_side = min_side
        self.max_aspect_ratio = max_aspect_ratio

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ref = self.refs[index]
        try:
            frame = self.decoder.decode(ref)
            self._check_shape(frame, ref.source)
            image, valid_hw = letterbox(frame, self.size)
        except Exception as error:  # one bad frame never stops the run: it is logged and counted as skipped
            return {"source": ref.source, "error": str(error) or type(error).__name__}
        item = {"source": ref.source, "image": torch.from_numpy(image), "valid_hw": valid_hw}
        if self.class_masks is not None:
            item["classes"] = torch.from_numpy(self.class_masks[ref.input_index])
        return item

    def _check_shape(self, frame: np.ndarray, source: str) -> None:
        h, w = frame.shape[:2]
        if min(h, w) < self.min_side:
            raise FrameReadError(
                source,
                f"frame is {w}x{h} pixels, below the minimum side of {self.min_side}",
                "lower data.init_args.min_side to keep such frames",
            )
        if max(h, w) > self.max_aspect_ratio * min(h, w):
            raise FrameReadError(
                source,
                f"frame is {w}x{h} pixels, an aspect ratio beyond {self.max_aspect_ratio:g}",
                "raise data.init_args.max_aspect_ratio to keep such frames",
            )


def collate_frames(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack decoded frames; carry skipped sources and their errors alongside.

    ``classes`` is the stacked ``bool (B, C)`` per-frame class masks, or ``None`` when the frames carry none.
    """
    good = [item for item in items if "error" not in item]
    size = good[0]["image"].shape[-1] if good else 0
    return {
        "images": torch.stack([item["image"] for item in good])
        if good
        else torch.zeros((0, size, size), dtype=torch.uint8),
        "valid_hw": torch.tensor([item["valid_hw"] for item in good], dtype=torch.int32).reshape(-1, 2),
        "classes": torch.stack([item["classes"] for item in good]) if good and "classes" in good[0] else None,
        "sources": [item["source"] for item in good],
        "skipped": [(item["source"], item["error"]) for item in items if "error" in item],
    }


class ContiguousShardSampler(DistributedSampler):
    """Rank ``r`` of ``W`` takes the r-th contiguous block (no padding, no repeats).

    Contiguous blocks keep a video's frames on one rank, so each video is
    decoded once per rank that holds it rather than by every rank. Lightning
    keeps a ``DistributedSampler`` it is given instead of injecting its own.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        total = len(dataset)
        self.start, self.stop = total * rank // num_replicas, total * (rank + 1) // num_replicas

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


class AnnotateFramesDataModule(LightningDataModule):
    """Unlabeled frames from mixed inputs (folders, files, data set layouts) for annotation.

    Args:
        inputs: the frame sources; see :class:`~anaus_pl.data.frame_sources.FrameInput`.
        batch_size: frames per inference batch.
        num_workers: DataLoader processes decoding and letterboxing frames.
        min_side: frames whose shorter side is below this many pixels are skipped (logged, counted).
        max_aspect_ratio: frames whose long/short side ratio exceeds this are skipped (logged, counted).

    The letterbox size and the class vocabulary are the predictor's, known once its checkpoint is
    loaded: the annotate stage hands them over with :meth:`use_predictor` before predicting.
    """

    def __init__(
        self,
        inputs: list[FrameInput],
        batch_size: int = 16,
        num_workers: int = 2,
        min_side: int = MIN_SIDE,
        max_aspect_ratio: float = MAX_ASPECT_RATIO,
    ) -> None:
        super().__init__()
        if not inputs:
            raise ValueError("data.init_args.inputs is empty: name at least one folder, video or layout to annotate")
        self.inputs = [spec if isinstance(spec, FrameInput) else FrameInput(**spec) for spec in inputs]
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.image_size: int | None = None  # the predictor's input size (use_predictor)
        self.input_classes: np.ndarray | None = None  # bool (inputs, C) against the predictor's vocabulary
        if min_side < 1 or max_aspect_ratio < 1:
            raise ValueError(
                f"data.init_args.min_side must be >= 1 and max_aspect_ratio >= 1, got {min_side} and {max_aspect_ratio}"
            )
        self.min_side = min_side
        self.max_aspect_ratio = max_aspect_ratio
        self.done_sources: set[str] = set()
        self._index: tuple[FrameTable, FrameDecoder] | None = None

    def check_inputs(self) -> None:
        """Fail, naming it, on the first input path that does not exist (before any model loads)."""
        check_inputs(self.inputs)

    def frames(self) -> FrameTable:
        """Every frame the inputs name (indexed once)."""
        return self._indexed()[0]

    def _indexed(self) -> tuple[FrameTable, FrameDecoder]:
        if self._index is None:
            refs, layouts = index_inputs(self.inputs)
            self._index = (refs, FrameDecoder(layouts))
            log.info("annotate inputs: %d frames from %d inputs", len(refs), len(self.inputs))
        return self._index

    def skip_sources(self, sources: set[str]) -> None:
        """Leave out frames already annotated (a resumed run)."""
        self.done_sources = set(sources)

    def pending(self) -> FrameTable:
        """The frames still to annotate, in input order."""
        frames = self.frames()
        if not self.done_sources:
            return frames
        return frames.subset([i for i, source in enumerate(frames.sources()) if source not in self.done_sources])

    def class_masks(self, names: Sequence[str]) -> np.ndarray:
        """``bool (inputs, C)``: which of the predictor's classes each input's frames may hold (names checked)."""
        return np.stack([spec.class_mask(names) for spec in self.inputs])

    def use_predictor(self, image_size: int, classes: Sequence[str]) -> None:
        """Letterbox to the predictor's input size; limit each input's frames to its classes (names checked)."""
        if image_size < 1:
            raise ValueError(f"the predictor's input size must be positive, got {image_size}")
        self.image_size = int(image_size)
        self.input_classes = self.class_masks(classes)

    def predict_dataloader(self) -> DataLoader:
        if self.image_size is None:
            raise RuntimeError(
                "AnnotateFramesDataModule.use_predictor(image_size, classes) was not called: "
                "annotate through `anaus-pl annotate` or AnausTrainer.annotate, which hand the predictor's over"
            )
        dataset = LetterboxedFrames(
            self.pending(),
            self._indexed()[1],
            self.image_size,
            self.input_classes,
            self.min_side,
            self.max_aspect_ratio,
        )
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=ContiguousShardSampler(dataset, world, rank),
            num_workers=self.num_workers,
            collate_fn=collate_frames,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=False,
        )


__all__ = ["AnnotateFramesDataModule", "ContiguousShardSampler", "FrameInput", "LetterboxedFrames", "collate_frames"]
