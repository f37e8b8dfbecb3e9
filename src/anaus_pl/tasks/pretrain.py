"""Stage 3: dual-policy anatomy-anchored SSL (alignment + core-region prediction) as a LightningModule.

Per step, for every scale ``s`` (one backbone pass per branch serves all scales):

    L = sum_s [ L_align,s  +  lambda_ctx * L_core,s ]

* online = encoder f + FPN + projectors g_s, then predictors q_s; target = EMA copy of
  f, FPN and g_s, updated once per optimizer step with a cosine momentum schedule;
* K region ids per image and scale, drawn in proportion to area among the ids present in
  both views, shared by both views and both networks (see :mod:`anaus_pl.models.regions`);
* the core crop of view 1 is corrupted for the online branch, the clean core of view 2
  feeds the target, with their own shared K ids.

Corruption and region draws use one generator per micro-batch seeded from
``(seed, global rank, global step, batch index)`` (:mod:`anaus_pl.randomness`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from anaus_pl.data.corruption import CorruptionConfig, corrupt
from anaus_pl.data.view_grid import view_grid
from anaus_pl.losses.alignment import region_alignment_loss
from anaus_pl.losses.byol import byol_loss
from anaus_pl.losses.core_region import CoreLossKind, core_region_loss
from anaus_pl.models.compile import compile_modules
from anaus_pl.models.ema import MomentumUpdater, target_copy
from anaus_pl.models.encoders import MultiScaleEncoder, scale_sizes
from anaus_pl.models.export import DEFAULT_MEAN, DEFAULT_STD, EncoderMeta, build_backbone, save_encoder
from anaus_pl.models.heads import ScaleHeads
from anaus_pl.models.normalization import InputNormalization
from anaus_pl.models.region_embedder import RegionEmbedder, Regions
from anaus_pl.models.regions import (
    Weighting,
    distinct_per_row,
    region_areas,
    region_fractions,
    sample_region_ids,
)
from anaus_pl.preflight import require_writable
from anaus_pl.randomness import run_seed, step_generator
from anaus_pl.schedules import warmup_cosine
from anaus_pl.tasks.probe_monitor import monitor_values
from anaus_pl.tasks.stage_checkpoints import load_stage_checkpoint, submodule_state

log = logging.getLogger(__name__)
Slots = dict[str, tuple[torch.Tensor, torch.Tensor]]  # scale -> (ids (B, K), valid (B, K))


BACKBONE_PREFIX = "online.encoder.backbone."  # the exported backbone's keys in the task's state dict


def checkpoint_encoder(path: str | Path) -> tuple[nn.Module, EncoderMeta]:
    """The online backbone of a pretrain checkpoint (weights loaded strictly) and its ``encoder.json`` content.

    Only the backbone is built: no task, no FPN, heads or target network.
    """
    checkpoint = load_stage_checkpoint(path, "pretrain")
    meta = EncoderMeta(**{**checkpoint["encoder_meta"], "source_checkpoint": str(path)})
    backbone = build_backbone(meta.arch, meta.library)
    backbone.load_state_dict(submodule_state(checkpoint, BACKBONE_PREFIX), strict=True)
    return backbone, meta


class PretrainTask(LightningModule):
    """ANAUS pre-training.

    Args:
        batch_size: images per device per step (the data module's; LightningCLI links ``data.batch_size``).
        image_size: side of the views in pixels (LightningCLI links ``data.views.image_size``); written to
            ``encoder.json`` as the encoder's input size.
        classes: names of the region ids 1..n (LightningCLI links ``data.classes``: the store's classes,
            none for grid or no masks); written to ``encoder.json``.
        arch, library: backbone (torchvision ``resnet18/50/101/152`` or a timm CNN).
        scales: feature levels used (``c5`` and FPN ``p5..p2``); the paper's are ``c5, p4, p3, p2``.
        fpn_channels: FPN width.
        projector_hidden, embedding_dim, predictor_hidden: MLP sizes (1024, 256, 4096).
        share_heads: one projector per input width and one predictor for all scales (released code).
        regions_per_view: K, region slots per image and scale.
        region_weighting: ``area`` (paper) or ``uniform`` (released code).
        tau: alignment temperature.
        lambda_ctx: weight of the core-region term.
        use_alignment, use_core: ablation switches.
        alignment_loss: ``infonce`` (the paper's region InfoNCE with negatives) or ``byol``
            (BYOL's normalised MSE to the other view's target, no negatives; with
            ``mask_source: none`` and ``use_core: false`` it is image-level BYOL).
        core_loss: ``normalized`` (squared L2 on unit vectors) or ``mse`` (released code).
        corruption: the online core crop's corruption rates.
        base_momentum: target EMA momentum at step 0 (cosine to 1).
        optimizer: ``lars`` (paper) or ``adamw``.
        base_lr: learning rate per 256 images when ``scale_lr`` (paper 0.3), else the learning rate.
        scale_lr: multiply ``base_lr`` by global batch / 256.
        weight_decay: applied to weights only (bias and norm parameters excluded, also from LARS adaptation).
        lars_momentum, trust_coeff: LARS's SGD momentum and trust coefficient (eta).
        warmup_epochs: linear warm-up length, then cosine per step.
        mean, std: input normalisation (written to ``encoder.json``).
        export_dir: where ``encoder.pt``/``encoder.json`` go on fit end (default: the logger's run dir).
        log_images_every_n_steps: period of the TensorBoard view grid (0: never).
        channels_last: keep convolution weights and inputs in NHWC memory layout (faster
            convolutions with oneDNN on CPUs and cuDNN tensor cores on GPUs; same values).
        compile: ``torch.compile`` the online and target networks and the predictors (off by
            default: compiling takes minutes on a CPU; worth it for long GPU runs).
    """

    checkpoint_stage = "pretrain"  # what ``fit --ckpt_path`` must be (checked before the model is built)

    def __init__(
        self,
        batch_size: int,
        image_size: int,
        classes: Sequence[str],
        arch: str = "resnet18",
        library: Literal["torchvision", "timm"] = "torchvision",
        scales: Sequence[str] = ("c5", "p4", "p3", "p2"),
        fpn_channels: int = 256,
        projector_hidden: int = 1024,
        embedding_dim: int = 256,
        predictor_hidden: int = 4096,
        share_heads: bool = False,
        regions_per_view: int = 16,
        region_weighting: Weighting = "area",
        tau: float = 0.1,
        lambda_ctx: float = 1.0,
        use_alignment: bool = True,
        use_core: bool = True,
        alignment_loss: Literal["infonce", "byol"] = "infonce",
        core_loss: CoreLossKind = "normalized",
        corruption: CorruptionConfig | None = None,
        base_momentum: float = 0.99,
        optimizer: Literal["lars", "adamw"] = "lars",
        base_lr: float = 0.3,
        scale_lr: bool = True,
        weight_decay: float = 1e-6,
        lars_momentum: float = 0.9,
        trust_coeff: float = 1e-3,
        warmup_epochs: float = 3.0,
        mean: tuple[float, float, float] = DEFAULT_MEAN,
        std: tuple[float, float, float] = DEFAULT_STD,
        export_dir: str | None = None,
        log_images_every_n_steps: int = 200,
        channels_last: bool = True,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not (use_alignment or use_core):
            raise ValueError("model.use_alignment and model.use_core are both false: nothing to train")
        if alignment_loss not in ("infonce", "byol"):
            raise ValueError(f"model.alignment_loss must be 'infonce' or 'byol', got {alignment_loss!r}")
        if optimizer not in ("lars", "adamw"):
            raise ValueError(f"model.optimizer must be 'lars' or 'adamw', got {optimizer!r}")
        if batch_size < 1:
            raise ValueError(f"model.batch_size must be at least 1, got {batch_size}")
        scale_sizes(scales, image_size)  # every scale's grid fits the views (a multiple of 32)
        self.scales = list(scales)
        self.corruption = corruption or CorruptionConfig()
        encoder = MultiScaleEncoder(arch, library, self.scales, fpn_channels)
        projectors = ScaleHeads(encoder.out_channels, projector_hidden, embedding_dim, shared=share_heads)
        self.online = RegionEmbedder(encoder, projectors)
        self.predictors = ScaleHeads(
            {s: embedding_dim for s in self.scales}, predictor_hidden, embedding_dim, shared=share_heads
        )
        if channels_last:
            self.online.to(memory_format=torch.channels_last)
        self.target = target_copy(self.online)
        if compile:
            compile_modules(self.online, self.target, self.predictors)
        self.input_norm = InputNormalization(mean, std)
        self.ema = MomentumUpdater(base_momentum)

    @staticmethod
    def check_config(init_args: dict[str, Any]) -> None:
        """Pre-flight (:mod:`anaus_pl.preflight`): ``export_dir``, when set, can be written."""
        if init_args["export_dir"]:
            require_writable(init_args["export_dir"], "model.init_args.export_dir")

    # ----------------------------------------------------------------- inputs
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Grayscale ``(B, 1, H, W)`` in [0, 1] -> 3-channel normalised network input."""
        normalized = self.input_norm(images)
        return normalized.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else normalized

    def draw_regions(
        self,
        mask_a: torch.Tensor,
        mask_b: torch.Tensor,
        image_size: int,
        num_ids: int,
        generator: torch.Generator | None = None,
    ) -> tuple[Regions, Regions, Slots]:
        """Region fractions of each label map at every scale and K ids per scale shared by both.

        Returns the regions of ``a``, those of ``b`` and the slots ``{scale: (ids, valid)}``.
        """
        areas_a, areas_b = region_areas(mask_a, num_ids), region_areas(mask_b, num_ids)
        regions_a: Regions = {}
        regions_b: Regions = {}
        slots: Slots = {}
        for scale, size in scale_sizes(self.scales, image_size).items():
            ids, valid = sample_region_ids(
                areas_a, areas_b, self.hparams.regions_per_view, self.hparams.region_weighting, generator
            )
            regions_a[scale] = (region_fractions(mask_a, num_ids, size), ids)
            regions_b[scale] = (region_fractions(mask_b, num_ids, size), ids)
            slots[scale] = (ids, valid)
        return regions_a, regions_b, slots

    # ---------------------------------------------------------------- forward
    def embed(self, images: torch.Tensor, regions: Regions) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Online predictions q_s(g_s(.)) and target projections g'_s(.) of ``images (B, 1, S, S)`` in [0, 1]."""
        x = self.normalize(images)
        return self.predict(x, regions), self.project_target(x, regions)

    def predict(self, x: torch.Tensor, regions: Regions) -> dict[str, torch.Tensor]:
        """Online predictions q_s(g_s(.)) ``{scale: (B, K, D)}`` of normalised images ``x``."""
        return {s: z.through(self.predictors, s).slots() for s, z in self.online(x, regions).items()}

    @torch.no_grad()
    def project_target(self, x: torch.Tensor, regions: Regions) -> dict[str, torch.Tensor]:
        """Target projections g'_s(.) ``{scale: (B, K, D)}`` of normalised images ``x``, without gradient."""
        return {s: z.slots() for s, z in self.target(x, regions).items()}

    def step_generator(self, batch_idx: int = 0) -> torch.Generator:
        """The generator of this rank's corruption and region draws for micro-batch ``batch_idx`` of this step."""
        return step_generator(run_seed(), self.global_rank, self.global_step, batch_idx, self.device)

    def compute_losses(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Every loss term and diagnostic of one batch (keys ``align/<scale>``, ``core/<scale>``, ``loss`` ...).

        ``generator`` drives the corruption and region draws (default: :meth:`step_generator`).
        """
        hp = self.hparams
        generator = generator or self.step_generator()
        b = batch["view1"].shape[0]
        masks = [batch[k].long() for k in ("mask1", "mask2", "core_mask1", "core_mask2")]
        num_ids = int(max(m.max() for m in masks)) + 1
        out: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=masks[0].device)
        if hp.use_alignment:
            views = torch.cat([batch["view1"], batch["view2"]]).float() / 255.0
            regions_1, regions_2, slots = self.draw_regions(masks[0], masks[1], views.shape[-1], num_ids, generator)
            both = {
                s: (torch.cat([regions_1[s][0], regions_2[s][0]]), torch.cat([regions_1[s][1], regions_2[s][1]]))
                for s in self.scales
            }
            predictions, targets = self.embed(views, both)
            stats = []
            for s in self.scales:
                ids, valid = slots[s]
                online, target = (predictions[s][:b], predictions[s][b:]), (targets[s][:b], targets[s][b:])
                if hp.alignment_loss == "byol":
                    out[f"align/{s}"] = byol_loss(*online, *target, valid)
                    stats.append(distinct_per_row(ids).float().mean()[None])
                else:
                    result = region_alignment_loss(*online, *target, ids, valid, hp.tau)
                    out[f"align/{s}"] = result.loss
                    stats.append(
                        torch.stack(
                            [
                                distinct_per_row(ids).float().mean(),
                                result.positive_similarity,
                                result.negative_similarity,
                            ]
                        )
                    )
                total = total + out[f"align/{s}"]
            names = ("regions_per_image", "positive_similarity", "negative_similarity")
            out.update(zip(names, torch.stack(stats).mean(0)))
        if hp.use_core:
            core_online = corrupt(batch["core1"].float() / 255.0, self.corruption, generator)
            core_target = batch["core2"].float() / 255.0
            regions_1, regions_2, slots = self.draw_regions(
                masks[2], masks[3], core_online.shape[-1], num_ids, generator
            )
            predictions = self.predict(self.normalize(core_online), regions_1)
            targets = self.project_target(self.normalize(core_target), regions_2)
            for s in self.scales:
                term = core_region_loss(predictions[s], targets[s], slots[s][1], hp.core_loss)
                out[f"core/{s}"] = term
                total = total + hp.lambda_ctx * term
            out["core_online_images"] = core_online.detach()
        out["loss"] = total
        return out

    def check_batch(self, batch: dict[str, torch.Tensor]) -> None:
        """Fail when the data's batches are not those the task was built for (learning rate scaling, export)."""
        b, size = batch["view1"].shape[0], batch["view1"].shape[-1]
        if (b, size) != (self.hparams.batch_size, self.hparams.image_size):
            raise ValueError(
                f"the data gives batches of {b} views of {size} px, but the task was built for model.batch_size "
                f"{self.hparams.batch_size} and model.image_size {self.hparams.image_size}: give the task the data "
                "module's batch_size and views.image_size (LightningCLI links them; do not set them under model)"
            )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.check_batch(batch)
        out = self.compute_losses(batch, self.step_generator(batch_idx))
        b = batch["view1"].shape[0]
        scalars = {f"train/{k}": v for k, v in out.items() if v.ndim == 0}
        scalars["train/momentum"] = torch.tensor(self.momentum)
        scalars["train/lr"] = torch.tensor(self.trainer.optimizers[0].param_groups[0]["lr"])
        self.log_dict(scalars, on_step=True, on_epoch=False, batch_size=b, sync_dist=False)
        self.log(
            "train/loss_epoch", out["loss"], on_step=False, on_epoch=True, batch_size=b, prog_bar=True, sync_dist=True
        )
        every = self.hparams.log_images_every_n_steps
        if every and self.global_step % every == 0:
            self._log_view_grid(batch, out.get("core_online_images"))
        return out["loss"]

    # -------------------------------------------------------------- EMA target
    @property
    def momentum(self) -> float:
        """The EMA momentum of the last target update (``base_momentum`` before the first)."""
        return self.ema.momentum

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer step, then exactly one EMA update of the target (encoder, FPN and projectors)."""
        super().optimizer_step(*args, **kwargs)
        self.ema.update(self.online, self.target, self.trainer.global_step, self.trainer.estimated_stepping_batches)

    # --------------------------------------------------------------- optimiser
    def global_batch_size(self) -> int:
        return self.hparams.batch_size * self.trainer.world_size * self.trainer.accumulate_grad_batches

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        trainable = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        decay = [p for n, p in trainable if p.ndim > 1]
        no_decay = [p for n, p in trainable if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        lr = hp.base_lr * self.global_batch_size() / 256 if hp.scale_lr else hp.base_lr
        if hp.optimizer == "lars":
            from timm.optim import Lars

            # timm's LARS adapts only groups with weight decay: bias/norm are excluded from both.
            optimizer = Lars(groups, lr=lr, momentum=hp.lars_momentum, trust_coeff=hp.trust_coeff)
        else:
            optimizer = torch.optim.AdamW(groups, lr=lr)
        total = int(self.trainer.estimated_stepping_batches)
        self.trainer.fit_loop.setup_data()  # sizes the epoch (num_training_batches); a no-op when done
        steps_per_epoch = math.ceil(self.trainer.num_training_batches / self.trainer.accumulate_grad_batches)
        warmup = min(total, max(1, int(round(hp.warmup_epochs * steps_per_epoch))))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total, warmup))
        log.info("optimizer %s, lr %.4g, %d steps (%d warm-up)", hp.optimizer, lr, total, warmup)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ export
    def encoder_meta(self, source_checkpoint: str = "") -> EncoderMeta:
        planned = self._trainer.estimated_stepping_batches if self._trainer else None
        return EncoderMeta(
            arch=self.hparams.arch,
            library=self.hparams.library,
            input_size=self.hparams.image_size,
            mean=tuple(self.hparams.mean),
            std=tuple(self.hparams.std),
            classes=list(self.hparams.classes),
            source_checkpoint=source_checkpoint,
            steps_done=self._trainer.global_step if self._trainer else None,
            steps_planned=int(planned) if planned is not None and math.isfinite(planned) else None,
            monitor=monitor_values(self._trainer),
        )

    def export_encoder(self, out_dir: str | Path, source_checkpoint: str = "", reason: str = "") -> Path:
        """Write the online backbone as ``encoder.pt`` + ``encoder.json``; a WARNING when the schedule was cut short."""
        meta = self.encoder_meta(source_checkpoint)
        path = save_encoder(self.online.encoder.backbone, meta, out_dir)
        if meta.truncated:
            log.warning(
                "pretraining stopped after %d of %d planned steps%s: %s holds a partly trained encoder "
                "(learning rate and EMA momentum mid-schedule); encoder.json records it",
                meta.steps_done,
                meta.steps_planned,
                f" ({reason})" if reason else "",
                path,
            )
        return path

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep what ``encoder.json`` needs (with the run's steps) so ``anaus-pl export`` needs no task."""
        checkpoint["encoder_meta"] = asdict(self.encoder_meta())

    def export_dir(self) -> str:
        return self.hparams.export_dir or (self.logger.log_dir if self.logger else self.trainer.default_root_dir)

    def on_fit_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        ckpt = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or ""
        reason = (
            "max_time or a stop request" if self.trainer.global_step < self.trainer.estimated_stepping_batches else ""
        )
        path = self.export_encoder(self.export_dir(), ckpt, reason)
        log.info("exported the encoder to %s", path)

    def configure_callbacks(self) -> list[Callback]:
        return [ExportOnInterrupt()]

    # ----------------------------------------------------------------- pictures
    def _log_view_grid(self, batch: dict[str, torch.Tensor], core_online: torch.Tensor | None, rows: int = 4) -> None:
        if not isinstance(self.logger, TensorBoardLogger) or not self.trainer.is_global_zero:
            return
        n = min(rows, batch["view1"].shape[0])
        grid_rows = []
        for i in range(n):
            row = [(batch["view1"][i] / 255.0, batch["mask1"][i]), (batch["view2"][i] / 255.0, batch["mask2"][i])]
            if core_online is not None:
                row.append((core_online[i], batch["core_mask1"][i]))
            row.append((batch["core2"][i] / 255.0, batch["core_mask2"][i]))
            grid_rows.append(row)
        size = batch["view1"].shape[-1]
        self.logger.experiment.add_image(
            "views/view1_view2_core-online_core-target", view_grid(grid_rows, size), self.global_step
        )


class ExportOnInterrupt(Callback):
    """When a signal or an exception stops the fit after some steps, export what was trained (recorded as such)."""

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not trainer.is_global_zero or trainer.global_step == 0 or not isinstance(pl_module, PretrainTask):
            return
        try:
            path = pl_module.export_encoder(pl_module.export_dir(), reason=f"{type(exception).__name__}: {exception}")
        except Exception:  # never hide the exception that stopped the fit
            log.exception("could not export the encoder after %s", type(exception).__name__)
            return
        log.warning("exported the partly trained encoder to %s", path)
