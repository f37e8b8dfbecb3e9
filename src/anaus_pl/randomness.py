"""One randomness design for every stage: each draw is a pure function of the run's seed and where it happens.

* **Samples** (CPU augmentation in DataLoader workers): the generators of a sample are
  reseeded from ``(seed, global rank, epoch, sample index)`` before it is drawn
  (:func:`sample_seed`), so a sample's augmentation depends neither on the worker that
  loads it nor on the number of workers, differs between ranks and between epochs, and
  is the same in every run with the same seed.
* **Workers**: the process-wide numpy, ``random`` and torch generators of each worker are
  seeded from ``(seed, global rank, worker id)`` (:func:`seed_worker`) for any library
  that draws from them.
* **Order**: :class:`SeededSampler` shuffles with ``(seed, epoch)``, splits the order over
  the ranks and publishes the epoch to the workers (persistent workers included).
* **Steps** (on-device draws inside the LightningModule: core corruption, region ids,
  SAM prompts): a generator seeded from ``(seed, global rank, global step, batch index)``
  (:func:`step_generator`; the batch index keeps accumulated micro-batches apart).

The epoch and the global step come back from a checkpoint, so a resumed run continues
the streams (its next epoch draws what an uninterrupted run draws there) instead of
replaying epoch 0. The seed is Lightning's ``seed_everything`` (``PL_GLOBAL_SEED``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from enum import IntEnum
from functools import partial
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


class Stream(IntEnum):
    """Tags that keep the derived streams of different uses apart."""

    SAMPLE = 1
    WORKER = 2
    STEP = 3


def run_seed(default: int = 0) -> int:
    """The run's seed: ``seed_everything``'s value (``PL_GLOBAL_SEED``), else ``default``."""
    return int(os.environ.get("PL_GLOBAL_SEED", default))


def global_rank() -> int:
    """This process's rank in the default process group (0 outside distributed runs)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    """Number of ranks in the default process group (1 outside distributed runs)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def derive_seed(*keys: int) -> int:
    """A 63-bit seed mixed from non-negative integer ``keys`` (numpy ``SeedSequence``:
    neighbouring keys give unrelated streams)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def sample_seed(seed: int, rank: int, epoch: int, index: int) -> int:
    """Seed of the draws of sample ``index`` on ``rank`` in ``epoch``."""
    return derive_seed(seed, Stream.SAMPLE, rank, epoch, index)


def step_generator(
    seed: int, rank: int, step: int, batch: int = 0, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A generator on ``device`` for the on-device draws of micro-batch ``batch`` at optimizer step ``step``."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, Stream.STEP, rank, step, batch))


def seed_worker(worker_id: int, seed: int, rank: int) -> None:
    """``worker_init_fn``: seed the worker's global numpy, ``random`` and torch generators."""
    value = derive_seed(seed, Stream.WORKER, rank, worker_id)
    np.random.seed(value % 2**32)
    random.seed(value)
    torch.manual_seed(value)


def worker_init(seed: int, rank: int) -> Callable[[int], None]:
    """A picklable ``worker_init_fn`` for ``(seed, rank)``."""
    return partial(seed_worker, seed=seed, rank=rank)


class EpochCell:
    """The current epoch in shared memory: set in the main process, read in every worker."""

    def __init__(self) -> None:
        self._value = torch.zeros((), dtype=torch.int64).share_memory_()

    def set(self, epoch: int) -> None:
        self._value.fill_(epoch)

    def get(self) -> int:
        return int(self._value)


class SeededSampler(DistributedSampler):
    """Shuffles with ``(seed, epoch)``, gives ``rank`` its share and tells the workers the epoch.

    A :class:`~torch.utils.data.DistributedSampler` (Lightning keeps it and calls
    :meth:`set_epoch` before each epoch, also after resuming) that works without a
    process group.
    """

    def __init__(
        self, dataset: Dataset, epoch: EpochCell, seed: int, rank: int, num_replicas: int, shuffle: bool = True
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.epoch_cell = epoch

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.epoch_cell.set(epoch)

    def __iter__(self) -> Iterator[Any]:
        self.epoch_cell.set(self.epoch)
        return super().__iter__()


class SampleStreams:
    """What a dataset needs to seed its samples: the run's seed, this rank and the shared epoch."""

    def __init__(self, seed: int | None = None, rank: int | None = None) -> None:
        self.seed = run_seed() if seed is None else seed
        self.rank = global_rank() if rank is None else rank
        self.epoch = EpochCell()

    def seed_of(self, index: int) -> int:
        """Seed of sample ``index`` in the current epoch."""
        return sample_seed(self.seed, self.rank, self.epoch.get(), index)

    def reseed(self, transform: Any, index: int) -> None:
        """Seed an albumentations transform (``set_random_seed``) for sample ``index``."""
        transform.set_random_seed(self.seed_of(index))

    def sampler(self, dataset: Dataset, shuffle: bool = True) -> SeededSampler:
        return SeededSampler(dataset, self.epoch, self.seed, self.rank, world_size(), shuffle)

    def worker_init_fn(self) -> Callable[[int], None]:
        return worker_init(self.seed, self.rank)

    def loader_arguments(self, dataset: Dataset, shuffle: bool = True) -> dict[str, Any]:
        """``sampler`` and ``worker_init_fn`` of a training DataLoader over ``dataset``."""
        return {"sampler": self.sampler(dataset, shuffle), "worker_init_fn": self.worker_init_fn()}
