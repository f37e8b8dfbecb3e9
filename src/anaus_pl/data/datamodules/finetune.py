"""Data of the downstream fine-tuning: one task decoded once, folds as index sets.

:func:`load_task` decodes every sample of a task once, letterboxed to the
task's image size, into memory (the six downstream sets are small: TN3K, the
largest, is 3.5k images, 175 MB at 224 px); :class:`FoldDataModule` then
serves a fold's train / validation / test indices of those arrays, with
albumentations augmentation for training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import albumentations as A
import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from anaus_pl.data.layouts.base import Layout, SampleRef
from anaus_pl.data.letterbox import letterbox
from anaus_pl.randomness import SampleStreams


@dataclass
class LoadedTask:
    """A task's samples, letterboxed to ``size``: images and (binary) masks ``(N, S, S)`` uint8, labels ``(N,)``."""

    sources: list[str]
    images: np.ndarray
    masks: np.ndarray | None
    labels: np.ndarray | None
    valid_hw: np.ndarray

    def index_of(self, sources: Sequence[str]) -> np.ndarray:
        position = {source: i for i, source in enumerate(self.sources)}
        return np.array([position[s] for s in sources], dtype=np.int64)


def foreground_ids(layout: Layout, names: Sequence[str] | None) -> list[int]:
    """Label-map values that count as foreground: those of ``names`` (all anatomy when None)."""
    if not names:
        return list(range(1, len(layout.anatomy) + 1)) or [1]
    unknown = [n for n in names if n not in layout.anatomy]
    if unknown:
        raise ValueError(f"foreground {unknown} not in layout {layout.name!r} anatomy {list(layout.anatomy)}")
    return [layout.anatomy.index(n) + 1 for n in names]


def load_task(
    layout: Layout,
    refs: Sequence[SampleRef],
    size: int,
    foreground: Sequence[int] | None = None,
    labels: bool = False,
    description: str = "",
) -> LoadedTask:
    """Decode and letterbox ``refs``; masks (0/1 for the ``foreground`` values) when given, class labels when ``labels``."""
    images = np.zeros((len(refs), size, size), np.uint8)
    masks = np.zeros_like(images) if foreground is not None else None
    labels = np.zeros(len(refs), np.int64) if labels else None
    valid = np.zeros((len(refs), 2), np.int64)
    for i, ref in enumerate(tqdm(refs, desc=f"loading {description}", leave=False, disable=len(refs) < 200)):
        sample = layout.load(ref)
        images[i], valid[i] = letterbox(sample.image, size)
        if masks is not None:
            if sample.mask is None:
                raise ValueError(f"{sample.source}: segmentation task but the {layout.name!r} reader gave no mask")
            masks[i] = np.isin(letterbox(sample.mask, size, nearest=True)[0], foreground)
        if labels is not None:
            label = sample.label if sample.label is not None else ref.label
            if label is None:
                raise ValueError(f"{sample.source}: classification task but the {layout.name!r} reader gave no label")
            labels[i] = label
    return LoadedTask([ref.source for ref in refs], images, masks, labels, valid)


def train_augmentation(size: int, crop_scale: tuple[float, float] = (0.8, 1.0)) -> A.Compose:
    """Random resized crop (ratio 0.8-1.25, the USCL protocol), flip, mild intensity changes."""
    return A.Compose(
        [
            A.RandomResizedCrop(size=(size, size), scale=crop_scale, ratio=(0.8, 1.25), p=1.0),
            A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.5),
        ]
    )


class ArrayDataset(Dataset):
    """Items of a :class:`LoadedTask`: ``image`` float (1, S, S) in [0, 1], ``mask`` float (S, S), ``label``, ``index``."""

    def __init__(
        self,
        data: LoadedTask,
        indices: np.ndarray,
        transform: A.Compose | None = None,
        streams: SampleStreams | None = None,
    ) -> None:
        self.data, self.indices, self.transform = data, np.asarray(indices), transform
        self.streams = streams or SampleStreams()  # seeds the transform per (seed, rank, epoch, item)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        index = int(self.indices[item])
        image = self.data.images[index]
        mask = self.data.masks[index] if self.data.masks is not None else None
        if self.transform is not None:
            self.streams.reseed(self.transform, item)
            out = self.transform(image=image, **({"mask": mask} if mask is not None else {}))
            image, mask = out["image"], out.get("mask")
        batch = {
            "image": torch.from_numpy(np.ascontiguousarray(image)).float().div(255).unsqueeze(0),
            "index": torch.tensor(index),
        }
        if mask is not None:
            batch["mask"] = torch.from_numpy(np.ascontiguousarray(mask)).float()
        if self.data.labels is not None:
            batch["label"] = torch.tensor(int(self.data.labels[index]))
        return batch


class FoldDataModule(LightningDataModule):
    """One fold: train (augmented), validation and test loaders over index sets of a :class:`LoadedTask`."""

    def __init__(
        self,
        data: LoadedTask,
        train: np.ndarray,
        val: np.ndarray,
        test: np.ndarray,
        batch_size: int = 16,
        augment: bool = True,
        crop_scale: tuple[float, float] = (0.8, 1.0),
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.data, self.parts = data, {"train": train, "val": val, "test": test}
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        size = data.images.shape[-1]
        self.transform = train_augmentation(size, crop_scale) if augment else None

    def _loader(self, part: str) -> DataLoader:
        training = part == "train"
        dataset = ArrayDataset(
            self.data, self.parts[part], self.transform if training else None, SampleStreams(self.seed)
        )
        seeding = dataset.streams.loader_arguments(dataset) if training else {}
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            drop_last=training and len(dataset) > self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            **seeding,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
