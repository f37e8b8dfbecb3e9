"""Image-mask pairs for LP-SAM adaptation, mixed from several readers into one vocabulary.

Every source is a registered layout (``ddti``, ``tg3k``, ``camus``, your own
``folder`` or ``datalist`` whose ``options.anatomy`` names the mask values). Its
label maps are re-expressed in the union vocabulary of all sources, frames and
masks are letterboxed to the model size, and the train/validation split is
drawn per source over patients where the reader knows them (else over
frames), so no patient is in both.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import albumentations as A
import cv2
import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from anaus_pl.data.layouts import Layout, SampleRef, get_layout
from anaus_pl.data.letterbox import letterbox
from anaus_pl.data.vocabulary import AnatomyVocabulary
from anaus_pl.preflight import require_folder
from anaus_pl.randomness import SampleStreams

log = logging.getLogger(__name__)


@dataclass
class PairSource:
    """One data set of image-mask pairs: a registered layout name and its root folder.

    Its masks supervise every vocabulary class: the classes it labels as drawn,
    all others as empty (a CAMUS frame holds no thyroid), except ``unlabeled``:
    classes its images may show without labelling them (the thyroid gland
    around DDTI's nodules), which get no loss on its images.
    """

    layout: str
    root: str
    limit: int | None = None  # use at most this many pairs (first in index order)
    unlabeled: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # reader options, e.g. {anatomy: {1: lv, 2: la}} for `folder`


class PairItem(NamedTuple):
    """One pair to load, with the vocabulary classes its mask supervises."""

    layout: Layout
    ref: SampleRef
    supervised: torch.Tensor


@dataclass
class PairAugment:
    """Training augmentations (paper/SAMUS: rotation, scale, contrast, gamma at p = 0.5; no flips)."""

    p: float = 0.5
    rotate_degrees: float = 30.0
    scale_max: float = 1.3
    contrast: tuple[float, float] = (0.8, 2.0)
    gamma: tuple[float, float] = (1.0, 2.4)  # image ** (1 / g), as the released code
    flip_p: float = 0.0  # apical views have a handedness: off unless asked for

    def build(self) -> A.Compose:
        return A.Compose(
            [
                A.Affine(
                    rotate=(-self.rotate_degrees, self.rotate_degrees),
                    scale=(1.0, self.scale_max),
                    p=self.p,
                    border_mode=cv2.BORDER_CONSTANT,
                    fill=0,
                    fill_mask=0,
                ),
                A.RandomBrightnessContrast(
                    brightness_limit=0.0, contrast_limit=(self.contrast[0] - 1, self.contrast[1] - 1), p=self.p
                ),
                A.RandomGamma(gamma_limit=(100 / self.gamma[1], 100 / self.gamma[0]), p=self.p),
                A.HorizontalFlip(p=self.flip_p),
            ]
        )


class PairDataset(Dataset):
    """Letterboxed pairs: ``image`` float ``(1, S, S)`` in [0, 1], ``label`` int64 ``(S, S)``, ``annotated`` bool ``(C,)``.

    The augmentation of pair ``i`` is seeded from ``(seed, rank, epoch, i)`` by ``streams``.
    """

    def __init__(
        self,
        items: list[PairItem],
        vocabulary: AnatomyVocabulary,
        size: int,
        transform: A.Compose | None = None,
        cache: bool = True,
        streams: SampleStreams | None = None,
    ) -> None:
        self.items, self.vocabulary, self.size, self.transform = items, vocabulary, size, transform
        self.streams = streams or SampleStreams()
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.items)

    def _letterboxed(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        layout, ref, _ = self.items[index]
        sample = layout.load(ref)
        if sample.mask is None:
            raise ValueError(f"{sample.source}: layout {layout.name!r} gave no mask; adapt needs image-mask pairs")
        image, _ = letterbox(sample.image, self.size)
        label, _ = letterbox(self.vocabulary.remap(sample.mask, layout.anatomy), self.size, nearest=True)
        if self.cache is not None:
            self.cache[index] = (image, label)
        return image, label

    def __getitem__(self, index: int) -> dict:
        image, label = self._letterboxed(index)
        if self.transform is not None:
            self.streams.reseed(self.transform, index)
            out = self.transform(image=image, mask=label)
            image, label = out["image"], out["mask"]
        item = self.items[index]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)).float().div_(255).unsqueeze(0),
            "label": torch.from_numpy(np.ascontiguousarray(label)).long(),
            "annotated": item.supervised,
            "source": item.ref.source,
        }


def split_by_patient(refs: list[SampleRef], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of train and validation items; all frames of a patient land on the same side."""
    groups: dict[str, list[int]] = {}
    for i, ref in enumerate(refs):
        groups.setdefault(ref.patient or ref.source, []).append(i)
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    n_val = min(len(keys) - 1, max(1, math.ceil(val_fraction * len(keys)))) if len(keys) > 1 and val_fraction > 0 else 0
    val_keys = {keys[i] for i in order[:n_val]}
    train = [i for k in keys if k not in val_keys for i in groups[k]]
    val = [i for k in keys if k in val_keys for i in groups[k]]
    return sorted(train), sorted(val)


class AdaptDataModule(LightningDataModule):
    """Mixed image-mask pairs for the adapt stage."""

    def __init__(
        self,
        sources: list[PairSource],
        image_size: int,
        batch_size: int = 8,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        seed: int = 0,
        augment: PairAugment | None = None,
        cache: bool = True,
    ) -> None:
        super().__init__()
        if not sources:
            raise ValueError("adapt data needs at least one source (data.sources: [{layout: ddti, root: ...}])")
        self.sources, self.image_size, self.batch_size = sources, image_size, batch_size
        self.num_workers, self.val_fraction, self.seed, self.cache = num_workers, val_fraction, seed, cache
        self.augment = augment or PairAugment()
        self.layouts = [get_layout(source.layout, source.root, **source.options) for source in sources]
        for layout in self.layouts:
            if layout.task != "segmentation":
                raise ValueError(
                    f"layout {layout.name!r} at {layout.root} has no masks (task {layout.task!r}); "
                    "adapt needs segmentation pairs"
                )
        self.vocabulary = AnatomyVocabulary.union(layout.anatomy for layout in self.layouts)
        for source in sources:
            unknown = sorted(set(source.unlabeled) - set(self.vocabulary.names))
            if unknown:
                raise ValueError(
                    f"source {source.layout} at {source.root}: unlabeled classes {unknown} are not in the "
                    f"vocabulary {list(self.vocabulary.names)}"
                )
        self.train_set: PairDataset | None = None
        self.val_set: PairDataset | None = None

    @staticmethod
    def check_config(init_args: dict[str, Any]) -> None:
        """Pre-flight (:mod:`anaus_pl.preflight`): every source's root folder exists."""
        for i, source in enumerate(init_args["sources"]):
            require_folder(source["root"], f"data.init_args.sources[{i}].root ({source['layout']})")

    @property
    def classes(self) -> list[str]:
        """The vocabulary's class names, in order (the model's output channels)."""
        return list(self.vocabulary.names)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, val = [], []
        for source, layout in zip(self.sources, self.layouts):
            supervised = torch.tensor([name not in source.unlabeled for name in self.vocabulary.names])
            refs = layout.index()[: source.limit]
            if not refs:
                raise ValueError(f"{layout.root}: no pairs found for layout {layout.name!r}; see data/README.md")
            train_idx, val_idx = split_by_patient(refs, self.val_fraction, self.seed)
            train += [PairItem(layout, refs[i], supervised) for i in train_idx]
            val += [PairItem(layout, refs[i], supervised) for i in val_idx]
            log.info("%s: %d train / %d val pairs", layout.name, len(train_idx), len(val_idx))
        self.train_set = PairDataset(train, self.vocabulary, self.image_size, self.augment.build(), self.cache)
        self.val_set = PairDataset(val, self.vocabulary, self.image_size, None, self.cache)

    def _loader(self, dataset: PairDataset, shuffle: bool) -> DataLoader:
        seeding = dataset.streams.loader_arguments(dataset) if shuffle else {}
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            **seeding,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle and len(dataset) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
