"""fit (pretrain, adapt) fails before any model is built: missing inputs, unwritable outputs, bad checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from anaus_pl.cli import main
from anaus_pl.data.anatomy_store import StoreError
from anaus_pl.lightning_cli import AnausCLI

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def nothing_is_built(monkeypatch):
    """Instantiating the configuration (the model, its data, the trainer) fails the test: the checks come first."""

    def instantiate(self):
        pytest.fail("the configuration's classes were instantiated before it was checked")

    monkeypatch.setattr(AnausCLI, "instantiate_classes", instantiate)


def fit(stage: str, tmp_path: Path, *overrides: str) -> int:
    """``anaus-pl fit --config stages/<stage>.yaml`` logging under ``tmp_path``, without the probe monitor."""
    return main(
        [
            "fit",
            "--config",
            str(ROOT / "stages" / f"{stage}.yaml"),
            "--trainer.callbacks",
            "[]",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "logs"),
            *overrides,
        ]
    )


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("anaus-pl fit:")]


def test_pretrain_without_its_store_fails_in_one_line(tmp_path, capsys):
    store = tmp_path / "anatomy.h5"
    assert fit("pretrain", tmp_path, "--data.init_args.store_path", str(store)) == 1
    assert error_lines(capsys) == [
        f"anaus-pl fit: StoreError: {store}: anatomy store not found; run `anaus-pl annotate` first "
        "(--debug shows the traceback)"
    ]
    with pytest.raises(StoreError):
        fit("pretrain", tmp_path, "--data.init_args.store_path", str(store), "--debug")


def test_adapt_with_a_missing_layout_root_fails_in_one_line(tmp_path, capsys):
    root = tmp_path / "DDTI"
    assert fit("adapt", tmp_path, "--data.init_args.sources", f"[{{layout: ddti, root: {root}}}]") == 1
    assert error_lines(capsys) == [
        f"anaus-pl fit: FileNotFoundError: {root}: input folder does not exist; fix data.init_args.sources[0].root "
        "(ddti) (the phantom's folders are written by `make phantom`) (--debug shows the traceback)"
    ]


def test_adapt_from_sam_weights_that_are_a_web_page_fails_in_one_line(tmp_path, capsys):
    weights = tmp_path / "sam_vit_b_01ec64.pth"
    weights.write_text("<!DOCTYPE html><html><body>Sign in to download</body></html>")
    args = ["--data.init_args.sources", f"[{{layout: ddti, root: {tmp_path}}}]"]
    args += ["--model.init_args.model.pretrained", "true", "--model.init_args.model.checkpoint", str(weights)]
    assert fit("adapt", tmp_path, *args) == 1
    [line] = error_lines(capsys)
    assert f"{weights}: is an HTML page, not a checkpoint" in line and "SAM or LiteMedSAM weights" in line


@pytest.mark.parametrize(
    "setting", ["--model.init_args.export_dir", "--trainer.logger.init_args.save_dir", "--trainer.default_root_dir"]
)
def test_pretrain_to_an_unwritable_folder_fails_in_one_line(synthetic_store, tmp_path, capsys, setting):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "out"  # cannot be created, even by root
    assert fit("pretrain", tmp_path, "--data.init_args.store_path", str(synthetic_store), setting, str(out)) == 1
    assert error_lines(capsys) == [
        f"anaus-pl fit: PermissionError: {out}: cannot create or write this output folder (Not a directory); "
        f"set {setting.removeprefix('--')} to a writable folder (--debug shows the traceback)"
    ]


def test_resuming_from_a_garbage_checkpoint_fails_in_one_line(synthetic_store, tmp_path, capsys):
    checkpoint = tmp_path / "last.ckpt"
    checkpoint.write_bytes(b"garbage")
    store = ["--data.init_args.store_path", str(synthetic_store)]
    assert fit("pretrain", tmp_path, *store, "--ckpt_path", str(checkpoint)) == 1
    [line] = error_lines(capsys)
    assert f"{checkpoint}: is not a PyTorch checkpoint" in line and "expected a pretrain-stage checkpoint" in line
    assert "weights_only" not in line


def test_pretrain_with_a_missing_probe_set_fails_in_one_line(synthetic_store, tmp_path, capsys):
    root = tmp_path / "busi"
    probe = f"[{{class_path: anaus_pl.tasks.probe_monitor.ProbeMonitor, init_args: {{layout: busi, root: {root}}}}}]"
    store = ["--data.init_args.store_path", str(synthetic_store)]
    assert fit("pretrain", tmp_path, *store, "--trainer.callbacks", probe) == 1
    [line] = error_lines(capsys)
    assert f"{root}: input folder does not exist; fix the root of trainer.callbacks ProbeMonitor" in line
