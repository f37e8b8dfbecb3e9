"""Downstream models on a pretrained backbone: staged encoder, classifier, FPN and Mask R-CNN segmenters.

Inits (:class:`~anaus_pl.models.inits.Init`, built by :func:`build_init`):

* ``encoder:<path>``: an anaus-pl export (``encoder.pt`` + ``encoder.json``), via :func:`load_encoder`;
* ``random``: the architecture with random weights;
* ``torchvision:<file>`` / ``timm:<file>``: a user's state dict for ``torchvision.models.<arch>``
  or ``timm.create_model(<arch>)``, loaded strictly apart from the classifier. Nothing is downloaded.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from anaus_pl.checkpoints import check_checkpoint, load_checkpoint
from anaus_pl.models.export import DEFAULT_MEAN, DEFAULT_STD, build_backbone, check_encoder, load_encoder
from anaus_pl.models.inits import INIT_FORMS, Init
from anaus_pl.models.normalization import IMAGENET_MEAN, IMAGENET_STD, InputNormalization

STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone when the init does not say (``random``, user weight files)."""

    arch: str = "resnet18"
    library: str = "torchvision"


def build_init(init: str | Init, spec: BackboneSpec) -> tuple[nn.Module, str, tuple, tuple]:
    """The backbone of an init (string or :class:`Init`), with its library, mean and std."""
    init = Init.parse(init)
    kind = init.kind
    if kind == "encoder":
        backbone, meta = load_encoder(init.path)
        return backbone, meta.library, tuple(meta.mean), tuple(meta.std)
    if kind == "random":
        return build_backbone(spec.arch, spec.library), spec.library, DEFAULT_MEAN, DEFAULT_STD
    if kind in ("torchvision", "timm"):
        file = Path(init.path)
        if not file.is_file():
            raise FileNotFoundError(f"{file}: weight file for init {init!r} not found (weights are never downloaded)")
        backbone = build_backbone(spec.arch, kind)
        state = load_checkpoint(file, "imagenet")
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        head = ("fc.", "head.", "classifier.")
        state = {k: v for k, v in state.items() if not k.startswith(head)}
        missing, unexpected = backbone.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(head)]
        if missing or unexpected:
            raise ValueError(
                f"{file}: not a {kind}.{spec.arch} state dict: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        # ImageNet weights expect ImageNet statistics on the grey frame repeated to RGB.
        return backbone, kind, IMAGENET_MEAN, IMAGENET_STD
    raise ValueError(f"init {str(init)!r}: use {INIT_FORMS}")


def check_init(init: str | Init) -> None:
    """Pre-flight of an init: its files exist and look like what they should be (nothing is loaded)."""
    init = Init.parse(init)
    if init.kind == "encoder":
        check_encoder(init.path)
    elif init.kind in ("torchvision", "timm"):
        check_checkpoint(init.path, "imagenet")


class StagedEncoder(nn.Module):
    """A ResNet-style backbone giving its four stage outputs (strides 4, 8, 16, 32).

    Takes grayscale or RGB float images in [0, 1] and normalises them itself.
    """

    def __init__(self, backbone: nn.Module, mean: tuple = DEFAULT_MEAN, std: tuple = DEFAULT_STD) -> None:
        super().__init__()
        if not all(hasattr(backbone, name) for name in ("conv1", "bn1", "maxpool", *STAGE_NAMES)):
            raise ValueError(
                f"{type(backbone).__name__}: the evaluate heads need a ResNet-style backbone "
                "(conv1, bn1, maxpool, layer1..layer4), e.g. torchvision resnet18/50 or timm resnet*"
            )
        self.stem = nn.Sequential(
            backbone.conv1, backbone.bn1, getattr(backbone, "act1", None) or nn.ReLU(inplace=True), backbone.maxpool
        )
        self.stages = nn.ModuleList(getattr(backbone, name) for name in STAGE_NAMES)
        self.input_norm = InputNormalization(mean, std)
        with torch.no_grad():
            self.channels = [f.shape[1] for f in self.forward(torch.zeros(1, 1, 64, 64))]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(self.input_norm(images))
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

    def set_trainable(self, mode: str, last_stages: int) -> None:
        """``full``: everything; ``finetune``: the last ``last_stages`` stages; ``linear``: nothing."""
        if mode not in ("full", "finetune", "linear"):
            raise ValueError(f"finetune mode must be full, finetune or linear, got {mode!r}")
        if mode == "finetune" and not 0 <= last_stages <= 4:
            raise ValueError(f"trainable_stages must be 0..4, got {last_stages}")
        n = {"full": 5, "finetune": last_stages, "linear": 0}[mode]
        blocks = [self.stem, *self.stages]
        for index, block in enumerate(blocks):
            block.requires_grad_(index >= len(blocks) - n)

    def train(self, mode: bool = True) -> StagedEncoder:
        """Frozen blocks stay in eval mode, so their batch-norm statistics do not drift."""
        super().train(mode)
        for block in (self.stem, *self.stages):
            if not any(p.requires_grad for p in block.parameters()):
                block.eval()
        return self


class Classifier(nn.Module):
    """Globally pooled last-stage features and a linear layer."""

    def __init__(self, encoder: StagedEncoder, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(encoder.channels[-1], num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.encoder(images)[-1], 1).flatten(1))


def init_foreground_prior(logits: nn.Conv2d, prior: float | None) -> None:
    """Start a mask-logit layer at foreground probability ``prior`` (the RetinaNet prior init; None: leave it).

    With a zero bias every pixel starts at probability 0.5, and a short schedule
    stops while the background is still above threshold: masks over-segment.
    """
    if prior is not None:
        if not 0 < prior < 1:
            raise ValueError(f"foreground prior must be in (0, 1), got {prior}")
        nn.init.constant_(logits.bias, math.log(prior / (1 - prior)))


class FPNSegmenter(nn.Module):
    """torchvision FPN on the four stages; a small conv head on the stride-4 level gives mask logits."""

    def __init__(self, encoder: StagedEncoder, channels: int = 64, prior: float | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.fpn = FeaturePyramidNetwork(encoder.channels, channels)
        self.head = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, 1, 1),
        )
        init_foreground_prior(self.head[-1], prior)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.encoder(images)
        pyramid = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(features)))
        fused = pyramid["0"]
        for level in ("1", "2", "3"):
            fused = fused + F.interpolate(pyramid[level], size=fused.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(self.head(fused), size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


class _PyramidBackbone(nn.Module):
    """Encoder + FPN in the form torchvision's detection models expect (``out_channels``, dict of levels)."""

    def __init__(self, encoder: StagedEncoder, channels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.fpn = FeaturePyramidNetwork(encoder.channels, channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = channels

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(self.encoder(images))))


def build_mask_rcnn(encoder: StagedEncoder, image_size: int, channels: int = 256, detections: int = 20) -> MaskRCNN:
    """torchvision Mask R-CNN (2 classes: background, foreground) on the pretrained encoder.

    The encoder normalises its input itself, so Mask R-CNN's own transform is
    the identity (mean 0, std 1) and keeps the letterboxed ``image_size``.
    """
    # One anchor size per level (strides 4..64), from 1/16 of the image to the whole image.
    anchor_sizes = tuple((max(4, image_size // 2**k),) for k in (4, 3, 2, 1, 0))
    anchors = AnchorGenerator(anchor_sizes, ((0.5, 1.0, 2.0),) * len(anchor_sizes))
    return MaskRCNN(
        _PyramidBackbone(encoder, channels),
        num_classes=2,
        min_size=image_size,
        max_size=image_size,
        image_mean=[0.0, 0.0, 0.0],
        image_std=[1.0, 1.0, 1.0],
        rpn_anchor_generator=anchors,
        box_detections_per_img=detections,
    )
