"""The encoder export contract between pretrain, evaluate and outside users.

``encoder.pt`` is a plain state dict that loads strictly into
``torchvision.models.<arch>()`` (or ``timm.create_model(<arch>)``) without its
classifier; ``encoder.json`` says how to build and feed it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from anaus_pl.atomic import atomic_path, write_json
from anaus_pl.checkpoints import check_checkpoint, load_checkpoint

# Grayscale frames in [0, 1] are repeated to 3 channels, then normalised with these.
DEFAULT_MEAN = (0.5, 0.5, 0.5)
DEFAULT_STD = (0.25, 0.25, 0.25)


@dataclass
class EncoderMeta:
    """What ``encoder.json`` holds.

    ``steps_done`` / ``steps_planned``: optimizer steps trained and steps the schedule (learning
    rate, EMA momentum) was built for; fewer done than planned means the fit was cut short
    (``max_time``, a signal, an exception). ``None``: not recorded (older exports).
    """

    arch: str
    library: Literal["torchvision", "timm"] = "torchvision"
    input_size: int = 224
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD
    classes: list[str] = field(default_factory=list)
    source_checkpoint: str = ""
    method: str = "anaus"
    steps_done: int | None = None
    steps_planned: int | None = None
    monitor: dict[str, float] = field(default_factory=dict)  # last ProbeMonitor values (held-set kNN / linear accuracy)

    @property
    def truncated(self) -> bool:
        """Whether the fit stopped before its planned steps."""
        return self.steps_done is not None and self.steps_planned is not None and self.steps_done < self.steps_planned


def build_backbone(arch: str, library: str = "torchvision") -> nn.Module:
    """A randomly initialised backbone without classifier (``fc``/head is Identity)."""
    if library == "torchvision":
        import torchvision

        if not hasattr(torchvision.models, arch):
            raise ValueError(f"torchvision has no model {arch!r}")
        model = getattr(torchvision.models, arch)(weights=None)
        if hasattr(model, "fc"):
            model.fc = nn.Identity()
        return model
    if library == "timm":
        import timm

        return timm.create_model(arch, pretrained=False, num_classes=0)
    raise ValueError(f"library must be 'torchvision' or 'timm', got {library!r}")


def classifier_free_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict without classifier keys (``fc.*``)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}


def save_encoder(backbone: nn.Module, meta: EncoderMeta, out_dir: str | Path) -> Path:
    """Write ``encoder.pt`` and ``encoder.json`` into ``out_dir``; returns the ``.pt`` path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "encoder.pt"
    with atomic_path(weights) as temporary:  # a reader never sees a truncated encoder.pt
        torch.save(classifier_free_state(backbone), temporary)
    write_json(out_dir / "encoder.json", asdict(meta))
    return weights


def encoder_files(path: str | Path) -> tuple[Path, Path]:
    """``encoder.pt`` and ``encoder.json`` of the export ``path`` (either file or their folder); a missing one is named."""
    path = Path(path)
    weights = path if path.suffix == ".pt" else path / "encoder.pt"
    meta_path = weights.with_name("encoder.json")
    for needed in (weights, meta_path):
        if not needed.is_file():
            raise FileNotFoundError(
                f"{needed}: missing; an encoder export is encoder.pt + encoder.json (run `make pretrain` or `anaus-pl export`)"
            )
    return weights, meta_path


def check_encoder(path: str | Path) -> None:
    """Pre-flight of an export, nothing unpickled or built: both files exist, ``encoder.pt`` is a checkpoint
    file and ``encoder.json`` is JSON."""
    weights, meta_path = encoder_files(path)
    check_checkpoint(weights, "encoder")
    try:
        json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{meta_path}: not JSON ({error}); export the encoder again (`anaus-pl export --ckpt ... --out DIR`)"
        ) from None


def load_encoder(path: str | Path) -> tuple[nn.Module, EncoderMeta]:
    """Build the backbone described by ``encoder.json`` beside ``path`` and load ``encoder.pt`` strictly."""
    weights, meta_path = encoder_files(path)
    raw = json.loads(meta_path.read_text())
    meta = EncoderMeta(
        **{**raw, "mean": tuple(raw.get("mean", DEFAULT_MEAN)), "std": tuple(raw.get("std", DEFAULT_STD))}
    )
    backbone = build_backbone(meta.arch, meta.library)
    state = load_checkpoint(weights, "encoder")
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"{weights}: does not match {meta.library}.{meta.arch}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return backbone, meta
