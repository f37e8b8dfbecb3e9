"""Outputs a later step reads are replaced atomically: a crash mid-write leaves the previous file whole."""

from __future__ import annotations

import json

import pytest
import torch

from anaus_pl import atomic
from anaus_pl.data.folds import save_folds
from anaus_pl.models.export import EncoderMeta, build_backbone, save_encoder


def test_atomic_path_replaces_on_success_and_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "out" / "summary.json"
    atomic.write_json(target, {"frames": 1})
    assert json.loads(target.read_text()) == {"frames": 1}
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".json"
        temporary.write_text('{"frames": ')  # half a file, then the writer dies
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"frames": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["summary.json"]  # no temporary left behind


def killed_before_rename(*args) -> None:
    """Stands in for ``os.replace``: the writer dies after writing its temporary file."""
    raise OSError("killed before the rename")


@pytest.fixture
def crash_before_rename(monkeypatch):
    monkeypatch.setattr(atomic.os, "replace", killed_before_rename)


def test_encoder_export_is_never_half_written(tmp_path, monkeypatch):
    backbone = build_backbone("resnet18")
    save_encoder(backbone, EncoderMeta(arch="resnet18"), tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("encoder.pt", "encoder.json")}
    torch.nn.init.zeros_(backbone.conv1.weight)
    monkeypatch.setattr(atomic.os, "replace", killed_before_rename)
    with pytest.raises(OSError, match="killed"):
        save_encoder(backbone, EncoderMeta(arch="resnet18", method="other"), tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.json", "encoder.pt"]


def test_folds_file_is_never_half_written(tmp_path, crash_before_rename):
    path = tmp_path / "folds" / "busi.json"
    path.parent.mkdir()
    path.write_text('{"folds": [["a"], ["b"]]}\n')
    with pytest.raises(OSError, match="killed"):
        save_folds(path, [["x"], ["y"]], origin="stratified", seed=0)
    assert json.loads(path.read_text()) == {"folds": [["a"], ["b"]]}
