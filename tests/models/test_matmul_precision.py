"""Under CPU bf16 autocast, the pooling and heads run in fp32 only where this CPU emulates bf16 matrix products."""

from __future__ import annotations

import pytest
import torch

from anaus_pl.models import matmul_precision
from anaus_pl.models.encoders import MultiScaleEncoder
from anaus_pl.models.heads import ScaleHeads


def bf16_autocast() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("emulated", [True, False])
def test_heads_follow_the_cpu_bf16_capability(emulated: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matmul_precision, "BF16_MATMULS_EMULATED", emulated)
    torch.manual_seed(0)
    heads = ScaleHeads({"p2": 16}, 32, 8).eval()  # running statistics: every call normalises alike
    x = torch.randn(6, 16)
    with bf16_autocast():
        out = heads("p2", x.bfloat16())
    reference = heads("p2", x.bfloat16().float())
    if emulated:
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, reference, rtol=0, atol=0)
    else:
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), reference, rtol=0.05, atol=0.05)


def test_region_pooling_casts_nested_stage_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matmul_precision, "BF16_MATMULS_EMULATED", True)
    torch.manual_seed(1)
    encoder = MultiScaleEncoder("resnet18", scales=["c5", "p3"], fpn_channels=8)
    stages = [torch.randn(2, ch, n, n).bfloat16() for ch, n in zip(encoder.stage_channels, (16, 8, 4, 2))]
    weights = {"c5": torch.softmax(torch.randn(2, 3, 4), -1), "p3": torch.softmax(torch.randn(2, 3, 64), -1)}
    with bf16_autocast():
        out = encoder.pool_stages(stages, weights)
    reference = encoder.pool_stages([c.float() for c in stages], weights)
    for scale in weights:
        assert out[scale].dtype == torch.float32
        torch.testing.assert_close(out[scale], reference[scale], rtol=0, atol=0)


def test_nothing_changes_outside_cpu_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matmul_precision, "BF16_MATMULS_EMULATED", True)
    heads = ScaleHeads({"p2": 4}, 8, 4, shared=False).double().eval()
    assert heads("p2", torch.randn(3, 4, dtype=torch.float64)).dtype == torch.float64
