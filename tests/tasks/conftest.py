"""Fixtures of the task tests: annotate frames and stand-in LP-SAM, adapt reader, pretrain store."""

from __future__ import annotations

from pathlib import Path

import pytest
import synthetic_layout  # noqa: F401  (registers the adapt tests' reader)
from annotate_runs import make_inputs, run_annotate, write_config
from synthetic_store import write_synthetic_store


@pytest.fixture(scope="session")
def annotate_inputs(tmp_path_factory) -> Path:
    return make_inputs(tmp_path_factory.mktemp("frames"))


@pytest.fixture(scope="session")
def stub_checkpoint(tmp_path_factory) -> Path:
    from stub_lpsam import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "stub.json", image_size=64)


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_store(tmp_path_factory.mktemp("store") / "anatomy.h5")


@pytest.fixture(scope="session")
def reference_store(annotate_inputs, stub_checkpoint, tmp_path_factory) -> Path:
    """One uninterrupted single-process run, shared by the tests that compare against it."""
    out = tmp_path_factory.mktemp("reference")
    run_annotate(write_config(out / "cfg.yaml", annotate_inputs, out / "anatomy.h5", stub_checkpoint))
    return out / "anatomy.h5"
