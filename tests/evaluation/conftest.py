"""Fake readers (registered layouts) with tiny synthetic data for the evaluate tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anaus_pl.data.layouts.base import LAYOUTS, Layout, Sample, SampleRef, register
from anaus_pl.models.export import EncoderMeta, build_backbone, save_encoder


def _disk(size: int, rng: np.random.Generator, empty: bool) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), np.uint8)
    if not empty:
        cy, cx, r = rng.integers(size // 4, 3 * size // 4, 2).tolist() + [int(rng.integers(size // 8, size // 4))]
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    image = (rng.normal(60, 15, (size, size)) + 120 * mask).clip(0, 255).astype(np.uint8)
    return image, mask


class FakeSegmentation(Layout):
    """Bright disks (``lesion``) on speckle; every 6th image has an empty mask; 3 images per patient."""

    name = "fake-seg"
    task = "segmentation"
    anatomy = ("lesion",)
    count = 30

    def index(self) -> list[SampleRef]:
        return [SampleRef(f"{self.root}/img{i}.png", patient=f"p{i // 3}") for i in range(self.count)]

    def load(self, ref: SampleRef) -> Sample:
        i = int(ref.source.rsplit("img", 1)[1].split(".")[0])
        image, mask = _disk(40, np.random.default_rng(i), empty=i % 6 == 5)
        return Sample(image, ref.source, mask=mask, patient=ref.patient)


class FakeOfficial(FakeSegmentation):
    """The same data with three official folds covering all but the last two images."""

    name = "fake-official"

    def official_folds(self) -> list[list[str]]:
        sources = [ref.source for ref in self.index()][:-2]
        return [sources[k::3] for k in range(3)]


class FakeClassification(Layout):
    """Three classes told apart by brightness; frames of one video (``path#frame``) share a patient-less group."""

    name = "fake-cls"
    task = "classification"
    class_names = ("dark", "mid", "bright")

    def index(self) -> list[SampleRef]:
        return [SampleRef(f"{self.root}/video{v}.avi#{f}", label=v % 3) for v in range(15) for f in range(2)]

    def load(self, ref: SampleRef) -> Sample:
        v, f = ref.source.rsplit("video", 1)[1].replace(".avi", "").split("#")
        rng = np.random.default_rng(int(v) * 10 + int(f))
        image = rng.normal(40 + 70 * (int(v) % 3), 10, (36, 44)).clip(0, 255).astype(np.uint8)
        return Sample(image, ref.source, label=ref.label)


for _cls in (FakeSegmentation, FakeOfficial, FakeClassification):
    if _cls.name not in LAYOUTS:
        register(_cls)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def encoder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny anaus-pl export (resnet18 with random weights) standing in for `make pretrain`."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("encoder")
    return save_encoder(build_backbone("resnet18"), EncoderMeta(arch="resnet18", input_size=64), out)
