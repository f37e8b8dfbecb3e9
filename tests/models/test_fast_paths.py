"""The pretrain step's fast paths give the numbers of the straightforward computation."""

from __future__ import annotations

import copy

import pytest
import torch

from anaus_pl.models import matmul_precision
from anaus_pl.models.encoders import MultiScaleEncoder, scale_sizes
from anaus_pl.models.heads import MLP, ScaleHeads, one_slot_per_row
from anaus_pl.models.region_embedder import RegionEmbedder, Regions, SlotRows
from anaus_pl.models.regions import pool_regions, region_fractions, region_weights
from anaus_pl.tasks.pretrain import PretrainTask

SMALL = dict(
    scales=["c5", "p4", "p3", "p2"],
    fpn_channels=16,
    projector_hidden=32,
    embedding_dim=16,
    predictor_hidden=32,
    regions_per_view=4,
    log_images_every_n_steps=0,
    batch_size=2,
    image_size=64,
    classes=[],
)


def small_batch(b: int = 2, size: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    batch = {}
    for v in ("1", "2"):
        batch[f"view{v}"] = torch.randint(0, 256, (b, 1, size, size), generator=g, dtype=torch.uint8)
        batch[f"core{v}"] = torch.randint(0, 256, (b, 1, size, size), generator=g, dtype=torch.uint8)
        for key in (f"mask{v}", f"core_mask{v}"):
            batch[key] = (
                torch.randint(0, 4, (b, size // 8, size // 8), generator=g, dtype=torch.uint8)
                .repeat_interleave(8, 1)
                .repeat_interleave(8, 2)
            )
    return batch


def straightforward_pooled(
    encoder: MultiScaleEncoder, x: torch.Tensor, weights: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Whole FPN feature maps, then mask pooling."""
    maps = encoder(x)
    return {s: pool_regions(maps[s], w) for s, w in weights.items()}


def slot_by_slot_through(self: SlotRows, heads: ScaleHeads, scale: str) -> SlotRows:
    """The head on one row per slot."""
    b, k = self.index.shape
    return SlotRows(heads(scale, self.slots()).flatten(0, 1), torch.arange(b * k).view(b, k))


def straightforward_embed(self: RegionEmbedder, images: torch.Tensor, regions: Regions) -> dict[str, SlotRows]:
    """Whole FPN feature maps, then every slot pooled and projected on its own."""
    maps = self.encoder(images)
    out = {}
    for s, (fractions, ids) in regions.items():
        pooled = pool_regions(maps[s], region_weights(fractions, ids))
        out[s] = slot_by_slot_through(
            SlotRows(pooled.flatten(0, 1), torch.arange(ids.numel()).view_as(ids)), self.projectors, s
        )
    return out


def losses_and_grads(
    task: PretrainTask, batch: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(0)  # the same corruption and region draws
    task.zero_grad(set_to_none=True)
    out = task.compute_losses(batch)
    out["loss"].backward()
    grads = {n: p.grad.clone() for n, p in task.named_parameters() if p.requires_grad}
    return {k: v.detach() for k, v in out.items() if v.ndim == 0}, grads


@pytest.mark.parametrize(
    ("scales", "regions_per_view"),
    [(SMALL["scales"], 6), (["p4", "p2"], 4)],  # 4 ids: K = 6 pools and projects per id, K = 4 per slot
)
def test_fast_step_matches_the_straightforward_losses_and_gradients(
    scales: list[str], regions_per_view: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(1)
    task = PretrainTask(**{**SMALL, "scales": scales, "regions_per_view": regions_per_view})
    batch = small_batch()
    initial_buffers = {n: b.clone() for n, b in task.named_buffers()}
    fast_losses, fast_grads = losses_and_grads(task, batch)
    fast_buffers = {n: b.clone() for n, b in task.named_buffers()}
    for name, buffer in task.named_buffers():
        buffer.copy_(initial_buffers[name])
    monkeypatch.setattr(RegionEmbedder, "forward", straightforward_embed)
    monkeypatch.setattr(SlotRows, "through", slot_by_slot_through)
    plain_losses, plain_grads = losses_and_grads(task, batch)
    assert fast_losses.keys() == plain_losses.keys() and len(fast_losses) > 3
    for key, value in plain_losses.items():
        assert torch.allclose(fast_losses[key], value, rtol=1e-5, atol=1e-6), key
    assert fast_grads.keys() == plain_grads.keys()
    fpn = [n for n in plain_grads if ".fpn." in n]
    assert fpn and all(plain_grads[n].abs().sum() > 0 for n in fpn)  # the FPN is trained through both paths
    for name, grad in plain_grads.items():
        assert torch.allclose(fast_grads[name], grad, rtol=1e-3, atol=max(1e-5 * grad.abs().max().item(), 1e-5)), (
            name
        )  # fp32 reassociation; biases before a BatchNorm get ~0 (noise)
    heads_statistics = [n for n in fast_buffers if "mlps" in n and "running" in n]
    assert heads_statistics
    for name, buffer in task.named_buffers():  # the batch norms' running statistics too
        torch.testing.assert_close(fast_buffers[name], buffer, rtol=1e-4, atol=1e-6)


def test_fast_pooling_matches_under_bf16_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matmul_precision, "BF16_MATMULS_EMULATED", False)  # the bf16 products of a GPU or AMX CPU
    torch.manual_seed(2)
    encoder = MultiScaleEncoder("resnet18", scales=SMALL["scales"], fpn_channels=16)
    x = torch.randn(2, 3, 64, 64)
    weights = {s: torch.softmax(torch.randn(2, 3, n * n), -1) for s, n in {"c5": 2, "p4": 4, "p3": 8, "p2": 16}.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast, plain = encoder.pooled(x, weights), straightforward_pooled(encoder, x, weights)
    for s in weights:
        assert fast[s].dtype == torch.bfloat16
        assert torch.allclose(
            fast[s].float(), plain[s].float(), rtol=0.05, atol=0.05 * plain[s].float().abs().max().item()
        ), s


def test_pyramid_pooling_needs_stage_sizes_that_halve() -> None:
    encoder = MultiScaleEncoder("resnet18", scales=["p3"], fpn_channels=8)
    c = [torch.randn(1, ch, n, n) for ch, n in zip(encoder.stage_channels, (14, 7, 4, 2))]  # 7 -> 4 is not a halving
    with pytest.raises(ValueError, match="divisible by 32"):
        encoder._pooled_pyramid(c, {"p3": torch.full((1, 2, 49), 1 / 49)})


def test_one_slot_per_row_names_one_of_its_slots() -> None:
    assert one_slot_per_row(torch.tensor([2, 0, 2, 1]), 5).tolist() == [1, 3, 2, 0, 0]  # row 4: no slot, slot 0


def test_mlp_on_distinct_rows_matches_one_row_per_slot() -> None:
    torch.manual_seed(5)
    distinct = MLP(8, 32, 4)
    per_slot = copy.deepcopy(distinct)
    slot_rows = torch.tensor([0, 2, 2, 1, 0, 0, 3, 2])  # row 4 has no slot
    rows = torch.randn(5, 8)
    upstream = torch.randn(8, 4)

    def run(mlp: MLP, on_distinct_rows: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = rows.clone().requires_grad_()
        out = mlp(x, slot_rows)[slot_rows] if on_distinct_rows else mlp(x[slot_rows])
        (out * upstream).sum().backward()
        return out, [x.grad, *(p.grad for p in mlp.parameters())]

    (fast, fast_grads), (plain, plain_grads) = run(distinct, True), run(per_slot, False)
    torch.testing.assert_close(fast, plain)
    for fast_grad, plain_grad in zip(fast_grads, plain_grads, strict=True):
        torch.testing.assert_close(fast_grad, plain_grad, rtol=1e-4, atol=1e-6)
    for fast_buffer, plain_buffer in zip(distinct.buffers(), per_slot.buffers(), strict=True):
        torch.testing.assert_close(fast_buffer, plain_buffer)  # running statistics over the 8 slots
    assert not torch.equal(distinct[1].running_var, torch.ones(32))


def test_pooling_each_id_once_gives_every_slot_its_slot_pooling() -> None:
    torch.manual_seed(4)
    encoder = MultiScaleEncoder("resnet18", scales=SMALL["scales"], fpn_channels=16)
    embedder = RegionEmbedder(encoder, ScaleHeads(encoder.out_channels, 32, 16))
    labels = torch.randint(0, 3, (2, 8, 8)).repeat_interleave(8, 1).repeat_interleave(8, 2)  # R = 3 ids
    ids = torch.randint(0, 3, (2, 6))  # K = 6 slots with repeats
    regions = {s: (region_fractions(labels, 3, n), ids) for s, n in scale_sizes(SMALL["scales"], 64).items()}
    x = torch.randn(2, 3, 64, 64)

    def outputs_and_grads(per_slot: bool) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        embedder.zero_grad(set_to_none=True)
        if per_slot:
            pooled = encoder.pooled(x, {s: region_weights(*regions[s]) for s in regions})
            out = {s: embedder.projectors(s, pooled[s]) for s in regions}
        else:
            out = {s: z.slots() for s, z in embedder(x, regions).items()}
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in out.values()).backward()
        return out, [p.grad.clone() for p in embedder.parameters()]

    fast, fast_grads = outputs_and_grads(per_slot=False)
    slot, slot_grads = outputs_and_grads(per_slot=True)
    for s in regions:
        torch.testing.assert_close(fast[s], slot[s])
    scale = max(g.abs().max().item() for g in slot_grads)  # biases before a BatchNorm get ~0 (noise)
    for fast_grad, slot_grad in zip(fast_grads, slot_grads):
        torch.testing.assert_close(fast_grad, slot_grad, rtol=1e-4, atol=1e-6 * scale)
