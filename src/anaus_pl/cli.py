"""The ``anaus-pl`` command.

Training stages run through :class:`AnausCLI`, a LightningCLI in subclass mode
(``fit``, ``validate`` and the custom subcommands that are methods of
:class:`AnausTrainer`). Lightning's ``test`` and ``predict`` are not offered: no
stage defines a test or prediction loop of its own (evaluate tests encoders on
held-out folds; annotate is the prediction stage). Commands that are not one Trainer run
(``phantom``, ``datasets``, ``evaluate``, ``export``, ...) are plain functions
registered in :data:`COMMANDS` and imported only when called.

An error ends the command with one line on stderr (exit status 1); ``--debug``
anywhere on the command line, or ``ANAUS_DEBUG=1``, shows the full traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

LIGHTNING_COMMANDS: dict[str, str] = {
    "fit": "train a stage's LightningModule (adapt, pretrain) from --config stages/<stage>.yaml",
    "validate": "score a checkpoint on a stage's held-out split (adapt: held-out Dice; add --ckpt_path)",
    "annotate": "label unlabeled frames with LP-SAM into the HDF5 anatomy store (--config stages/annotate.yaml)",
}

# name -> ("module:function", one-line help); each function takes argv (list of str).
COMMANDS: dict[str, tuple[str, str]] = {
    "phantom": ("anaus_pl.data.phantom.cli:main", "write the simulated B-mode world in the public layouts"),
    "datasets": ("anaus_pl.data.layouts.cli:main", "check a data set tree against its layout (datasets check)"),
    "evaluate": (
        "anaus_pl.evaluation.cli:main",
        "k-fold downstream evaluation of encoders and its report (--config stages/evaluate.yaml)",
    ),
    "study": (
        "anaus_pl.study:main",
        "the phantom ablation study: every stage, five pretrain variants, docs/RESULTS.md",
    ),
    "export": ("anaus_pl.tasks.export:main", "write a pretrain checkpoint's encoder as encoder.pt + encoder.json"),
}


def _usage() -> str:
    lines = ["usage: anaus-pl <command> [options]", "", "Training stages (LightningCLI; add --help after the command):"]
    lines += [f"  {name:<10} {text}" for name, text in LIGHTNING_COMMANDS.items()]
    lines += ["", "Pipeline commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    lines += [
        "",
        "Errors print one line; add --debug (or set ANAUS_DEBUG=1) for the full traceback.",
        "Example: anaus-pl fit --config stages/pretrain.yaml",
    ]
    return "\n".join(lines)


def _resolve(target: str) -> Callable[[Sequence[str]], int | None]:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def run_lightning(argv: Sequence[str]) -> None:
    """Run a LightningCLI subcommand with anaus-pl's trainer and defaults."""
    from anaus_pl.lightning_cli import AnausCLI

    # LightningCLI warns when given args that equal sys.argv; let it read them itself then.
    AnausCLI(args=None if list(argv) == sys.argv[1:] else list(argv))


def debug_requested(argv: Sequence[str]) -> bool:
    """``--debug`` on the command line or ``ANAUS_DEBUG`` set to anything but empty or 0."""
    return "--debug" in argv or os.environ.get("ANAUS_DEBUG", "") not in ("", "0")


def one_line(error: BaseException) -> str:
    """An exception as one line: its message (or its type when it has none), whitespace runs collapsed."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``anaus-pl`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [arg for arg in argv if arg != "--debug"]
    try:
        return _dispatch(argv)
    except Exception as error:
        if debug:
            raise
        name = argv[0] if argv else ""
        print(
            f"anaus-pl {name}: {type(error).__name__}: {one_line(error)} (--debug shows the traceback)", file=sys.stderr
        )
        return 1


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from anaus_pl import __version__

        print(__version__)
        return 0
    command = argv[0]
    if command in COMMANDS:
        return int(_resolve(COMMANDS[command][0])(argv[1:]) or 0)
    if command in LIGHTNING_COMMANDS:
        run_lightning(argv)
        return 0
    print(f"anaus-pl: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
