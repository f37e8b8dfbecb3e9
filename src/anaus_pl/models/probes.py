"""Frozen-encoder probes: feature extraction, cosine kNN, a linear probe and a light segmentation decoder.

Used by the evaluate stage's frozen protocols (``linear``, ``knn``) and by the
pretraining monitor. The encoder never trains here: its features are
extracted once (eval mode, no gradients) and the probes fit on those tensors,
so a probe costs seconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from anaus_pl.losses.overlap import soft_dice_loss
from anaus_pl.models.downstream import init_foreground_prior


@torch.no_grad()
def extract_features(encoder: nn.Module, images: np.ndarray, batch_size: int = 64) -> list[torch.Tensor]:
    """The encoder's stage outputs for uint8 ``(N, S, S)`` images (float in [0, 1] to the encoder), on the CPU.

    ``encoder`` maps ``(B, 1, S, S)`` images to a list of feature maps (e.g. a
    :class:`~anaus_pl.models.downstream.StagedEncoder`). It runs in eval mode and is put back as it was.
    """
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    chunks: list[list[torch.Tensor]] = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).float().div(255).unsqueeze(1)
        chunks.append([f.float().cpu() for f in encoder(batch.to(device))])
    encoder.train(was_training)
    return [torch.cat([chunk[level] for chunk in chunks]) for level in range(len(chunks[0]))]


def pooled(features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Globally average-pooled last-level features ``(N, C)``."""
    return features[-1].mean((-2, -1))


def knn_probabilities(
    train: torch.Tensor,
    labels: torch.Tensor,
    test: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
) -> torch.Tensor:
    """Class scores ``(N_test, C)`` of a cosine kNN: the ``k`` nearest training features vote ``exp(cos / T)``.

    The weighted vote of InstDisc / solo-learn / lightly; rows sum to 1.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    similarity = F.normalize(test.float(), dim=1) @ F.normalize(train.float(), dim=1).T
    top, index = similarity.topk(min(k, len(train)), dim=1)
    votes = torch.zeros(len(test), num_classes).scatter_add_(1, labels[index], (top / temperature).exp())
    return votes / votes.sum(1, keepdim=True)


class LinearProbe(nn.Module):
    """A linear classifier on standardised features (the standardisation is the training set's)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(len(mean), num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.std)


def fit_linear_probe(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, weight_decay: float = 1e-3, max_iter: int = 100
) -> LinearProbe:
    """Multinomial logistic regression (L2 ``weight_decay``), full batch, L-BFGS; deterministic."""
    features = features.float()
    if not torch.isfinite(features).all():
        raise ValueError("linear probe: the features hold NaN or inf (has the encoder diverged?)")
    # Near-constant features (e.g. dead ReLU channels) keep their scale: dividing by ~0 would blow them up.
    mean, std = features.mean(0), features.std(0)
    std = torch.where(std > 1e-3 * std.max().clamp(min=1e-12), std, torch.ones_like(std))
    probe = LinearProbe(mean, std, num_classes)
    nn.init.zeros_(probe.linear.weight)
    nn.init.zeros_(probe.linear.bias)
    optimizer = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        penalty = (
            probe.linear.weight.square().sum() + probe.linear.bias.square().sum()
        )  # strictly convex: a finite optimum
        loss = F.cross_entropy(probe(features), labels) + weight_decay * penalty
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe.requires_grad_(False)


class LightDecoder(nn.Module):
    """A light decoder on frozen multi-scale features: 1x1 projections summed at the finest level, a 3x3 conv, logits."""

    def __init__(self, channels: Sequence[int], width: int = 32, prior: float | None = None) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.head = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 1),
        )
        init_foreground_prior(self.head[-1], prior)

    def forward(self, features: Sequence[torch.Tensor], size: int) -> torch.Tensor:
        """Mask logits ``(B, size, size)``."""
        finest = features[0].shape[-2:]
        fused = sum(
            F.interpolate(p(f), size=finest, mode="bilinear", align_corners=False) if f.shape[-2:] != finest else p(f)
            for p, f in zip(self.project, features)
        )
        return F.interpolate(self.head(fused), size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def fit_decoder(
    features: Sequence[torch.Tensor],
    masks: torch.Tensor,
    width: int = 32,
    epochs: int = 30,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    prior: float | None = None,
) -> LightDecoder:
    """Train a :class:`LightDecoder` with BCE + soft Dice on cached features of ``(N, S, S)`` 0/1 masks (Adam, cosine)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        decoder = LightDecoder([f.shape[1] for f in features], width, prior)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    steps = epochs * max(1, -(-len(masks) // batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    masks = masks.float()
    decoder.train()
    for _ in range(epochs):
        order = torch.randperm(len(masks), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            if len(batch) < 2:  # batch norm needs two samples
                continue
            logits = decoder([f[batch] for f in features], masks.shape[-1])
            loss = (
                F.binary_cross_entropy_with_logits(logits, masks[batch]) + soft_dice_loss(logits, masks[batch]).mean()
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return decoder.eval().requires_grad_(False)
