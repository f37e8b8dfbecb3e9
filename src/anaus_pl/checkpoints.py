"""Reading checkpoints without running code from them, with errors that say what the file is and what to do.

Every ``torch.load`` in anaus-pl goes through :func:`load_checkpoint`, which
always passes ``weights_only=True``: tensors, numbers, strings and plain
containers are rebuilt, and besides them only the configuration dataclasses
the caller names (plain fields, no custom unpickling): the stage that writes a
checkpoint knows which ones Lightning stores in its hyper-parameters, and its
reader passes them. Anything else in the file (a crafted ``__reduce__``, a
foreign class) is refused before it runs.

Failures name the file, what was expected and the fix: a missing, empty,
HTML (a saved download page), truncated or garbage file, a file holding
other Python objects, or the checkpoint of another stage.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A weight file that cannot be used; the message names the file, the problem and the fix."""


@dataclass(frozen=True)
class Expected:
    """What a stage's checkpoint is, the keys that prove it, and how to get a good one."""

    what: str
    fix: str
    keys: tuple[str, ...] = ()
    hparams: tuple[str, ...] = ()  # keys of its ``hyper_parameters``


EXPECTED: dict[str, Expected] = {
    "adapt": Expected(
        "an adapt-stage LP-SAM checkpoint",
        "point to runs/adapt/<run>/checkpoints/last.ckpt, written by `anaus-pl fit --config stages/adapt.yaml`",
        ("state_dict", "hyper_parameters"),
        ("model",),
    ),
    "pretrain": Expected(
        "a pretrain-stage checkpoint",
        "point to runs/pretrain/<run>/checkpoints/last.ckpt, written by `anaus-pl fit --config stages/pretrain.yaml`",
        ("state_dict", "hyper_parameters", "encoder_meta"),
    ),
    "finetune": Expected(
        "a fine-tuning checkpoint of `anaus-pl evaluate`",
        "rerun `anaus-pl evaluate`; it writes and reads these itself",
        ("state_dict", "hyper_parameters"),
        ("init", "head"),
    ),
    "encoder": Expected(
        "an encoder export (encoder.pt beside encoder.json)",
        "run `make pretrain` or `anaus-pl export --ckpt runs/pretrain/<run>/checkpoints/last.ckpt --out DIR`",
    ),
    "imagenet": Expected(
        "a torchvision or timm state dict",
        "download the library's weight file again and compare its sha256 with the published one",
    ),
    "sam": Expected(
        "SAM or LiteMedSAM weights (a .pth state dict)",
        "download the official file (e.g. sam_vit_b_01ec64.pth), compare its size/sha256 with the published "
        "one and point the config's 'checkpoint' at it",
    ),
}

_HTML_MARKERS = (b"<!doctype", b"<html", b"<head", b"<?xml", b"<body")


def _problem(path: Path, head: bytes, error: Exception) -> str:
    """Why ``torch.load`` failed, in words (never torch's advice to turn off its safe loading)."""
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes): the copy or download did not finish"
    if any(marker in head.lower() for marker in _HTML_MARKERS):
        return "is an HTML page, not a checkpoint (a download link saved the web page): download the file itself"
    found = re.search(r"GLOBAL (\S+)", str(error))
    if isinstance(error, pickle.UnpicklingError) and found:
        return (
            f"holds a Python object ({found.group(1)}) that anaus-pl does not unpickle, because unpickling it "
            "could run code; only tensors, plain types and anaus-pl's config dataclasses are read"
        )
    if head.startswith(b"PK\x03\x04"):
        return f"is truncated or corrupt ({size} bytes; {type(error).__name__}): copy or download it again"
    return f"is not a PyTorch checkpoint ({size} bytes starting {head[:8]!r}; {type(error).__name__})"


def _read_head(path: Path, expected: Expected) -> bytes:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; expected {expected.what}: {expected.fix}")
    with open(path, "rb") as handle:
        return handle.read(512)


def check_checkpoint(path: str | Path, stage: str) -> None:
    """Cheap pre-flight check (no unpickling): the file exists, is not HTML and its zip directory reads."""
    path, expected = Path(path), EXPECTED[stage]
    head = _read_head(path, expected)
    error: Exception | None = None
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                archive.namelist()
            return
        except (zipfile.BadZipFile, OSError) as bad:
            error = bad
    elif head[:1] == b"\x80":  # torch's legacy (non-zip) format is a pickle stream
        return
    problem = _problem(path, head, error or pickle.UnpicklingError("not a zip archive"))
    raise CheckpointError(f"{path}: {problem}; expected {expected.what}: {expected.fix}")


def stage_of(checkpoint: Any) -> str:
    """Which anaus-pl stage wrote ``checkpoint`` (a best guess from its keys), in words."""
    if not isinstance(checkpoint, Mapping):
        return f"a {type(checkpoint).__name__}, not a checkpoint dictionary"
    hparams = checkpoint.get("hyper_parameters") or {}
    if "encoder_meta" in checkpoint:
        return "a pretrain-stage checkpoint"
    if "adapter_epochs" in hparams:
        return "an adapt-stage checkpoint"
    if "head" in hparams and "init" in hparams:
        return "a fine-tuning checkpoint"
    if "state_dict" in checkpoint:
        return "a Lightning checkpoint of another model"
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return "a plain state dict (weights only, e.g. SAM weights or an encoder.pt)"
    return f"a dictionary with keys {sorted(map(str, checkpoint))[:5]}"


def load_checkpoint(
    path: str | Path,
    stage: str,
    map_location: str | torch.device = "cpu",
    config_classes: Sequence[type] = (),
) -> Any:
    """``torch.load(path, weights_only=True)`` checked to be ``stage``'s checkpoint (see :data:`EXPECTED`).

    ``config_classes``: the plain configuration dataclasses the file may hold besides tensors and
    plain types (those the writing stage keeps in its hyper-parameters).
    """
    path, expected = Path(path), EXPECTED[stage]
    head = _read_head(path, expected)
    try:
        with torch.serialization.safe_globals(list(config_classes)):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
        UnicodeDecodeError,
        AttributeError,
        TypeError,
    ) as error:
        raise CheckpointError(
            f"{path}: {_problem(path, head, error)}; expected {expected.what}: {expected.fix}"
        ) from None
    missing = [key for key in expected.keys if not isinstance(checkpoint, Mapping) or key not in checkpoint]
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, Mapping) else None
    missing += [
        f"hyper_parameters.{key}" for key in expected.hparams if isinstance(hparams, Mapping) and key not in hparams
    ]
    if missing:
        raise CheckpointError(
            f"{path}: this is {stage_of(checkpoint)} (no {', '.join(missing)}), "
            f"expected {expected.what}: {expected.fix}"
        )
    return checkpoint
