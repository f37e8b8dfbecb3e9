"""Region fractions, area-proportional sampling, mask pooling; the multi-scale encoder; the SSL heads."""

from __future__ import annotations

import pytest
import torch

from anaus_pl.models.encoders import MultiScaleEncoder, scale_sizes
from anaus_pl.models.regions import (
    pool_regions,
    region_areas,
    region_fractions,
    region_weights,
)


def test_fractions_are_area_per_cell() -> None:
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :2, :1] = 2  # 2 pixels of id 2 in the top-left 2x2 cell
    fractions = region_fractions(labels, 3, 2)
    assert fractions.shape == (1, 3, 2, 2)
    assert fractions[0, 2, 0, 0] == 0.5 and fractions[0, 0, 0, 0] == 0.5 and fractions[0, 2].sum() == 0.5
    assert torch.allclose(fractions.sum(1), torch.ones(1, 2, 2))


@pytest.mark.parametrize(("side", "size"), [(224, 7), (224, 56), (70, 5), (71, 5)])  # 71 px: overlapping cells
def test_counted_fractions_equal_the_pooled_one_hot(side: int, size: int) -> None:
    labels = torch.randint(0, 5, (3, side, side), generator=torch.Generator().manual_seed(side))
    one_hot = torch.nn.functional.one_hot(labels, 6).permute(0, 3, 1, 2).float()  # id 5 absent: zero fractions
    torch.testing.assert_close(
        region_fractions(labels, 6, size), torch.nn.functional.adaptive_avg_pool2d(one_hot, size)
    )
    torch.testing.assert_close(region_areas(labels, 6), one_hot.mean((2, 3)))


def test_pool_regions_is_the_area_weighted_mean() -> None:
    features = torch.arange(4.0).view(1, 1, 2, 2)  # cells 0, 1, 2, 3
    fractions = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]], [[0.0, 0.5], [1.0, 1.0]]]])
    pooled = pool_regions(features, region_weights(fractions, torch.tensor([[0, 1, 1]])))
    assert torch.allclose(pooled[0, :, 0], torch.tensor([0.5 / 1.5, (0.5 + 2 + 3) / 2.5, (0.5 + 2 + 3) / 2.5]))


class _Standardised(torch.nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight - self.weight.mean(), self.bias)


@pytest.mark.parametrize(
    "conv",
    [
        torch.nn.Conv2d(6, 6, 3, padding=1, padding_mode="reflect"),
        torch.nn.Conv2d(6, 6, 3, padding=1, padding_mode="circular"),
        torch.nn.Conv2d(6, 6, 3, padding=2, dilation=2),
        torch.nn.Conv2d(6, 6, 3, padding=1, groups=2),
        torch.nn.Conv2d(6, 6, 3, padding=1, stride=2),
        torch.nn.Conv2d(6, 6, 2, padding=1),
        _Standardised(6, 6, 3, padding=1),
    ],
    ids=["reflect", "circular", "dilated", "grouped", "strided", "even-kernel", "own-forward"],
)
def test_pooling_through_a_conv_it_cannot_reproduce_is_refused(conv: torch.nn.Conv2d) -> None:
    encoder = MultiScaleEncoder(scales=["p4", "p3"], fpn_channels=6)
    x = torch.rand(2, 3, 64, 64)
    weights = {
        s: region_weights(region_fractions(torch.randint(0, 3, (2, 64, 64)), 3, n), torch.randint(0, 3, (2, 4)))
        for s, n in scale_sizes(["p4", "p3"], 64).items()
    }
    index = 0  # P3's output convolution (the first FPN level here)
    encoder.fpn.layer_blocks[index] = torch.nn.Sequential(conv)
    with pytest.raises(TypeError, match="pooled FPN reproduces only"):
        encoder.pooled(x, weights)
    if conv.padding_mode != "zeros":  # the zero-padded shortcut would be silently inexact for it
        exact = pool_regions(encoder(x)["p3"], weights["p3"])
        zeros = torch.nn.Conv2d(6, 6, 3, padding=1)
        zeros.load_state_dict(conv.state_dict())
        encoder.fpn.layer_blocks[index] = torch.nn.Sequential(zeros)
        assert not torch.allclose(encoder.pooled(x, weights)["p3"], exact, atol=1e-3)
