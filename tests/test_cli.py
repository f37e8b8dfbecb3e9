import subprocess
import sys

from anaus_pl.cli import COMMANDS, LIGHTNING_COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in list(COMMANDS) + list(LIGHTNING_COMMANDS):
        assert f"  {name} " in out


def test_unknown_command_fails(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_fit_help_runs_through_lightning_cli():
    result = subprocess.run(
        [sys.executable, "-m", "anaus_pl.cli", "fit", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--trainer.precision" in result.stdout and "--model" in result.stdout


def test_errors_are_one_line_unless_debug_is_asked_for(tmp_path, capsys, monkeypatch):
    import pytest

    from anaus_pl.checkpoints import CheckpointError

    argv = ["export", "--ckpt", str(tmp_path / "none.ckpt"), "--out", str(tmp_path / "out")]
    monkeypatch.delenv("ANAUS_DEBUG", raising=False)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0].startswith("anaus-pl export: CheckpointError: ")
        and "none.ckpt: checkpoint not found" in err[0]
    )
    with pytest.raises(CheckpointError):
        main([*argv, "--debug"])
    monkeypatch.setenv("ANAUS_DEBUG", "1")
    with pytest.raises(CheckpointError):
        main(argv)


def test_lightning_loops_no_stage_defines_are_not_offered(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "  test " not in out and "  predict " not in out
    assert main(["predict", "--config", "stages/annotate.yaml"]) == 2
    assert "unknown command 'predict'" in capsys.readouterr().err
