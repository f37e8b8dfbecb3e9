"""Tiny item counts so layout tests run in seconds."""

import pytest

from anaus_pl.data.phantom.writers import Counts

TINY = Counts(
    ddti=3,
    tg3k=3,
    camus_patients=2,
    camus_frames=(3, 4),
    butterfly_folders=4,
    butterfly_frames=3,
    butterfly_clips=4,
    pocus_videos=3,
    pocus_images=4,
    pocus_frames=3,
    busi=5,
    udiat=3,
    tn3k_trainval=5,
    tn3k_test=2,
    hmcqu_a4c=4,
    hmcqu_a2c=1,
    hmcqu_frames=8,
    clip_frames=3,
)


@pytest.fixture(scope="session")
def tiny_counts() -> Counts:
    return TINY


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory):
    from anaus_pl.data.phantom import write_phantom

    return write_phantom(tmp_path_factory.mktemp("phantom"), seed=3, counts=TINY)
