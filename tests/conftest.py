"""Shared test set-up: no network, few threads, deterministic seeds."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
