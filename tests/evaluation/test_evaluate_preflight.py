"""evaluate fails before any data is read or model built: missing roots, bad encoder files, unwritable out_dir."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anaus_pl import cli
from anaus_pl.evaluation import runner
from anaus_pl.models import downstream, export

STAGE = str(Path(__file__).resolve().parents[2] / "stages" / "evaluate.yaml")


@pytest.fixture(autouse=True)
def nothing_is_built(monkeypatch):
    """Running the folds, building an init's backbone or reading a task's data fails the test."""

    def built(*args, **kwargs):
        pytest.fail("evaluate built a model or read data before checking its files")

    for module, name in ((runner, "evaluate"), (downstream, "build_init"), (export, "build_backbone")):
        monkeypatch.setattr(module, name, built)
    monkeypatch.setattr(runner, "get_layout", built)


def evaluate(tmp_path: Path, root: Path, inits: str = "[random]", out_dir: Path | None = None) -> int:
    task = f"[{{name: cls, layout: busi, root: {root}, kind: classification}}]"
    out = out_dir or tmp_path / "evaluate"
    return cli.main(["evaluate", "--config", STAGE, "--tasks", task, "--inits", inits, "--out_dir", str(out)])


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("anaus-pl evaluate:")]


def test_a_missing_layout_root_fails_in_one_line(tmp_path, capsys):
    root = tmp_path / "BUSI"
    assert evaluate(tmp_path, root) == 1
    assert error_lines(capsys) == [
        f"anaus-pl evaluate: FileNotFoundError: {root}: input folder does not exist; fix the root of task 'cls' "
        "(tasks[].root) (the phantom's folders are written by `make phantom`) (--debug shows the traceback)"
    ]
    assert not (tmp_path / "evaluate" / "config.yaml").exists()


def test_a_garbage_encoder_fails_in_one_line(encoder_path, tmp_path, capsys):
    folder = tmp_path / "encoder"
    shutil.copytree(encoder_path.parent, folder)
    (folder / "encoder.pt").write_bytes(b"\x00garbage from a disk that filled up")
    assert evaluate(tmp_path, tmp_path, f"[encoder:{folder / 'encoder.pt'}, random]") == 1
    [line] = error_lines(capsys)
    assert line.startswith(f"anaus-pl evaluate: CheckpointError: {folder / 'encoder.pt'}: ")
    assert "expected an encoder export (encoder.pt beside encoder.json)" in line and "weights_only" not in line
    (folder / "encoder.json").unlink()
    assert evaluate(tmp_path, tmp_path, f"[encoder:{folder}, random]") == 1
    assert error_lines(capsys) == [
        f"anaus-pl evaluate: FileNotFoundError: {folder / 'encoder.json'}: missing; an encoder export is "
        "encoder.pt + encoder.json (run `make pretrain` or `anaus-pl export`) (--debug shows the traceback)"
    ]


def test_an_unwritable_out_dir_fails_in_one_line(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert evaluate(tmp_path, tmp_path, out_dir=blocker / "evaluate") == 1
    assert error_lines(capsys) == [
        f"anaus-pl evaluate: PermissionError: {blocker / 'evaluate'}: cannot create or write this output folder "
        "(Not a directory); set out_dir to a writable folder (--debug shows the traceback)"
    ]
