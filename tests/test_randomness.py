"""anaus_pl.randomness: derived seeds, the seeded sampler and per-sample reseeding of albumentations."""

from __future__ import annotations

import numpy as np

from anaus_pl.data.datamodules.adapt import PairAugment
from anaus_pl.randomness import EpochCell, SampleStreams, SeededSampler, derive_seed, sample_seed


def test_derived_seeds_repeat_and_neighbours_differ() -> None:
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    seeds = {sample_seed(0, rank, epoch, index) for rank in range(2) for epoch in range(3) for index in range(50)}
    assert len(seeds) == 2 * 3 * 50 and all(0 <= s < 2**63 for s in seeds)


def test_sampler_splits_ranks_follows_epochs_and_publishes_the_epoch() -> None:
    data = list(range(10))
    cells = [EpochCell(), EpochCell()]
    samplers = [SeededSampler(data, cells[r], seed=0, rank=r, num_replicas=2) for r in range(2)]
    first = [list(s) for s in samplers]
    assert sorted(first[0] + first[1]) == data
    for sampler in samplers:
        sampler.set_epoch(3)
    assert [list(s) for s in samplers] != first and cells[0].get() == cells[1].get() == 3


def test_adapt_augmentation_is_a_function_of_seed_rank_epoch_and_index() -> None:
    image = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    mask = (image > 128).astype(np.uint8)
    transform = PairAugment(p=1.0).build()

    def draw(streams: SampleStreams, index: int) -> np.ndarray:
        streams.reseed(transform, index)
        return transform(image=image, mask=mask)["image"]

    rank0, rank1 = SampleStreams(seed=0, rank=0), SampleStreams(seed=0, rank=1)
    assert np.array_equal(draw(rank0, 5), draw(SampleStreams(seed=0, rank=0), 5))
    assert not np.array_equal(draw(rank0, 5), draw(rank1, 5))
    assert not np.array_equal(draw(rank0, 5), draw(rank0, 6))
    before = draw(rank0, 5)
    rank0.epoch.set(1)
    assert not np.array_equal(before, draw(rank0, 5))
