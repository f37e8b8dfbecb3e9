"""SLURM tests: the cluster ones run only inside scripts/test_slurm.sh (ANAUS_SLURM_CLUSTER=1)."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the stand-in stage module, for class_path imports


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("ANAUS_SLURM_CLUSTER") == "1":
        return
    skip = pytest.mark.skip(reason="needs the local SLURM cluster: run `make test-slurm`")
    for item in items:
        if item.get_closest_marker("slurm") is not None:
            item.add_marker(skip)
