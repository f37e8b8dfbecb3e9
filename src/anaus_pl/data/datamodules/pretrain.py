"""The pretrain stage's data: two views + core crops of every frame of the HDF5 anatomy store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from anaus_pl.data.anatomy_store import AnatomyStore, StoreError
from anaus_pl.data.views import MaskSource, TwoViewTransform, ViewConfig, grid_label_map
from anaus_pl.randomness import SampleStreams

log = logging.getLogger(__name__)


def _as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image))


class TwoViewStoreDataset(Dataset):
    """``store[i]`` -> dict of uint8 tensors ``view1, view2 (1, S, S)``, ``mask1, mask2 (S, S)``,
    ``core1, core2 (1, Sc, Sc)``, ``core_mask1, core_mask2 (Sc, Sc)``.

    ``mask_source`` chooses the regions: ``anatomy`` (the store's label maps),
    ``grid`` (DetCon's ``grid_cells x grid_cells`` grid), ``none`` (the whole frame, image-level).
    The draws of sample ``i`` are seeded from ``(seed, rank, epoch, i)`` by ``streams``.
    """

    def __init__(
        self,
        store: AnatomyStore,
        transform: TwoViewTransform,
        mask_source: MaskSource = "anatomy",
        grid_cells: int = 4,
        streams: SampleStreams | None = None,
    ) -> None:
        if mask_source not in ("anatomy", "grid", "none"):
            raise ValueError(f"mask_source must be 'anatomy', 'grid' or 'none', got {mask_source!r}")
        self.store, self.transform, self.mask_source, self.grid_cells = store, transform, mask_source, grid_cells
        self.streams = streams or SampleStreams()

    def __len__(self) -> int:
        return len(self.store)

    def _label_map(self, record: dict[str, Any]) -> np.ndarray:
        if self.mask_source == "anatomy":
            return record["mask"]
        if self.mask_source == "grid":
            return grid_label_map(record["valid_hw"], record["image"].shape[0], self.grid_cells)
        return np.zeros_like(record["image"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        record = self.store[index]
        h, w = record["valid_hw"]
        if h < 8 or w < 8:
            raise StoreError(
                f"{self.store.path}: frame {index} ({record['source']}) has valid size {h}x{w}; re-annotate it"
            )
        self.transform.reseed(self.streams.seed_of(index))
        sample = self.transform(record["image"], self._label_map(record), (h, w))
        out = {}
        for v in (0, 1):
            out[f"view{v + 1}"] = _as_tensor(sample.views[v])[None]
            out[f"mask{v + 1}"] = _as_tensor(sample.masks[v])
            out[f"core{v + 1}"] = _as_tensor(sample.cores[v])[None]
            out[f"core_mask{v + 1}"] = _as_tensor(sample.core_masks[v])
        return out


class PretrainDataModule(LightningDataModule):
    """Reads ``store_path`` lazily (one HDF5 handle per worker) and yields two-view batches.

    Args:
        store_path: the anatomy store written by the annotate stage.
        batch_size: images per device per step (global batch = batch_size x devices x accumulation).
        num_workers: DataLoader worker processes.
        views: the two-view / core augmentation.
        mask_source: ``anatomy`` | ``grid`` | ``none`` (ablations: DetCon's grid, image-level BYOL).
        grid_cells: grid side for ``mask_source: grid``.
    """

    def __init__(
        self,
        store_path: str = "runs/annotate/default/anatomy.h5",
        batch_size: int = 32,
        num_workers: int = 2,
        views: ViewConfig | None = None,
        mask_source: MaskSource = "anatomy",
        grid_cells: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.store_path = Path(store_path)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.views = views or ViewConfig()
        self.mask_source = mask_source
        self.grid_cells = grid_cells
        self.store: AnatomyStore | None = None

    @staticmethod
    def check_config(init_args: dict[str, Any]) -> None:
        """Pre-flight (:mod:`anaus_pl.preflight`): the store exists and is of this schema (its attributes only are read)."""
        AnatomyStore(init_args["store_path"]).close()

    @property
    def classes(self) -> list[str]:
        """Names of the region ids 1..n: the store's classes (empty for grid / none)."""
        return list(self._opened().classes) if self.mask_source == "anatomy" else []

    def _opened(self) -> AnatomyStore:
        if self.store is None:
            self.store = AnatomyStore(self.store_path)  # reads the attributes; the HDF5 handle opens per process
        return self.store

    def setup(self, stage: str | None = None) -> None:
        self._opened()
        if self.store.size < self.views.image_size // 2:
            log.warning(
                "%s: frames are %d px, views %d px: views are upsampled",
                self.store_path,
                self.store.size,
                self.views.image_size,
            )
        if len(self.store) < self.batch_size:
            raise StoreError(
                f"{self.store_path}: {len(self.store)} frames, fewer than one batch of {self.batch_size}; lower data.batch_size"
            )

    def train_dataloader(self) -> DataLoader:
        assert self.store is not None, "setup() first"
        streams = SampleStreams()
        dataset = TwoViewStoreDataset(
            self.store, TwoViewTransform(self.views), self.mask_source, self.grid_cells, streams
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            **streams.loader_arguments(dataset),
            pin_memory=torch.cuda.is_available(),
        )
