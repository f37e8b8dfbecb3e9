"""Region fractions, area-proportional sampling, mask pooling; the multi-scale encoder; the SSL heads."""

from __future__ import annotations

import pytest
import torch

from anaus_pl.models.encoders import MultiScaleEncoder, scale_sizes
from anaus_pl.models.heads import ScaleHeads
from anaus_pl.models.regions import distinct_per_row, pool_regions, pool_regions_through_conv, region_areas, region_fractions, region_weights, sample_region_ids


def test_fractions_are_area_per_cell() -> None:
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :2, :1] = 2  # 2 pixels of id 2 in the top-left 2x2 cell
    fractions = region_fractions(labels, 3, 2)
    assert fractions.shape == (1, 3, 2, 2)
    assert fractions[0, 2, 0, 0] == 0.5 and fractions[0, 0, 0, 0] == 0.5 and fractions[0, 2].sum() == 0.5
    assert torch.allclose(fractions.sum(1), torch.ones(1, 2, 2))


def test_pool_regions_is_the_area_weighted_mean() -> None:
    features = torch.arange(4.0).view(1, 1, 2, 2)  # cells 0, 1, 2, 3
    fractions = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]], [[0.0, 0.5], [1.0, 1.0]]]])
    pooled = pool_regions(features, region_weights(fractions, torch.tensor([[0, 1, 1]])))
    assert torch.allclose(pooled[0, :, 0], torch.tensor([0.5 / 1.5, (0.5 + 2 + 3) / 2.5, (0.5 + 2 + 3) / 2.5]))


def test_pooling_through_a_conv_equals_pooling_its_output() -> None:
    torch.manual_seed(0)
    labels = torch.randint(0, 4, (3, 20, 20))
    weights = region_weights(region_fractions(labels, 4, 10), torch.randint(0, 4, (3, 5)))
    for conv in (torch.nn.Conv2d(6, 7, 3, padding=1), torch.nn.Conv2d(6, 7, 1, bias=False), torch.nn.Conv2d(6, 7, 5, padding=2)):
        features = torch.randn(3, 6, 10, 10, requires_grad=True)
        direct = pool_regions(conv(features), weights)
        (grad_direct,) = torch.autograd.grad(direct.square().sum(), features)
        through = pool_regions_through_conv(conv, features, weights)
        (grad_through,) = torch.autograd.grad(through.square().sum(), features)
        assert torch.allclose(through, direct, atol=1e-5) and torch.allclose(grad_through, grad_direct, atol=1e-5)
    with pytest.raises(ValueError, match="same"):
        pool_regions_through_conv(torch.nn.Conv2d(6, 7, 3, stride=2, padding=1), features, weights)


@pytest.mark.parametrize("scales", [["c5", "p4", "p3", "p2"], ["p3"], ["p4", "p2"]])
def test_encoder_pooled_equals_pooling_the_feature_maps(scales: list[str]) -> None:
    torch.manual_seed(1)
    encoder = MultiScaleEncoder("resnet18", scales=scales, fpn_channels=16).eval()
    images, labels = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    sizes = scale_sizes(scales, 64)
    weights = {s: region_weights(region_fractions(labels, 3, sizes[s]), torch.randint(0, 3, (2, 4))) for s in scales}
    maps = encoder(images)
    pooled = encoder.pooled(images, weights)
    for s in scales:
        assert torch.allclose(pooled[s], pool_regions(maps[s], weights[s]), atol=1e-5), s


def test_sampling_frequencies_follow_area_and_only_shared_ids() -> None:
    areas_a = torch.tensor([[0.6, 0.3, 0.1, 0.0]])
    areas_b = torch.tensor([[0.6, 0.3, 0.0, 0.1]])  # ids 2 and 3 are each missing from one view
    g = torch.Generator().manual_seed(0)
    ids, valid = sample_region_ids(areas_a.repeat(2000, 1), areas_b.repeat(2000, 1), 16, generator=g)
    counts = torch.bincount(ids.flatten(), minlength=4).float() / ids.numel()
    assert valid.all() and counts[2] == 0 and counts[3] == 0
    assert counts[0] == pytest.approx(2 / 3, abs=0.01) and counts[1] == pytest.approx(1 / 3, abs=0.01)
    uniform, _ = sample_region_ids(areas_a.repeat(2000, 1), areas_b.repeat(2000, 1), 16, "uniform", generator=g)
    assert torch.bincount(uniform.flatten(), minlength=4)[:2].float().div(uniform.numel()).sub(0.5).abs().max() < 0.01
    _, none_shared = sample_region_ids(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), 4)
    assert not none_shared.any()


def test_region_areas_and_distinct_counts() -> None:
    labels = torch.tensor([[[0, 1], [1, 1]]])
    assert torch.allclose(region_areas(labels, 3), torch.tensor([[0.25, 0.75, 0.0]]))
    assert distinct_per_row(torch.tensor([[3, 1, 3, 3], [0, 0, 0, 0]])).tolist() == [2, 1]


@pytest.mark.parametrize("arch,library,c5", [("resnet18", "torchvision", 512), ("resnet50", "torchvision", 2048), ("resnet18", "timm", 512)])
def test_encoder_scales_follow_input_size_in_one_pass(arch: str, library: str, c5: int) -> None:
    encoder = MultiScaleEncoder(arch, library, ["c5", "p4", "p3", "p2"], fpn_channels=32)
    out = encoder(torch.randn(2, 3, 64, 64))
    assert {s: tuple(v.shape[1:]) for s, v in out.items()} == {"c5": (c5, 2, 2), "p4": (32, 4, 4), "p3": (32, 8, 8), "p2": (32, 16, 16)}
    assert scale_sizes(["c5", "p4", "p3", "p2"], 224) == {"c5": 7, "p4": 14, "p3": 28, "p2": 56}


def test_every_encoder_parameter_gets_a_gradient_for_any_scale_subset() -> None:
    for scales in (["c5", "p4", "p3", "p2"], ["p3"], ["c5"]):
        encoder = MultiScaleEncoder("resnet18", scales=scales, fpn_channels=16)
        sum(v.mean() for v in encoder(torch.randn(2, 3, 64, 64)).values()).backward()
        assert [n for n, p in encoder.named_parameters() if p.grad is None] == [], scales


def test_heads_per_scale_or_shared_by_width() -> None:
    widths = {"c5": 512, "p4": 256, "p3": 256}
    assert len(ScaleHeads(widths, 64, 16).mlps) == 3
    shared = ScaleHeads(widths, 64, 16, shared=True)
    assert len(shared.mlps) == 2 and shared("p4", torch.randn(2, 5, 256)).shape == (2, 5, 16)
    with pytest.raises(ValueError, match="unknown scales"):
        scale_sizes(["p6"], 224)
