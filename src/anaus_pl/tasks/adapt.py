"""Stage 1 "adapt": LP-SAM adapted once on image-mask pairs, in two phases of one fit.

* epochs ``[0, adapter_epochs)``: phase **adapter**. The ``adapter_trainable``
  parts (paper: the encoder adapters only) learn the domain with SAM's own
  prompts drawn from the ground truth: a random positive click and a jittered
  box per present class. The loss is the paper's ``(1 - a) BCE + a Dice``; the IoU
  head's MSE reaches the adapters only with ``adapter_iou_loss: true``.
* epochs ``[adapter_epochs, max_epochs)``: phase **prompt**. Encoder and
  adapters frozen (run without gradients); the ``prompt_trainable`` parts
  (latent prompt engine and mask decoder) learn to delineate every vocabulary
  class with no external prompt.

The phase is a function of the epoch, so resuming from ``last.ckpt`` resumes
the right phase with its own cosine schedule. SAM prompts are drawn with one
generator per micro-batch seeded from ``(seed, global rank, global step, batch index)``
(:mod:`anaus_pl.randomness`). Parts trainable in neither phase
are frozen (``requires_grad=False``); parts idle in the current phase get no
update (their gradients are dropped before the optimizer step, and they are
skipped by the forward pass where possible), which is why DDP needs
``find_unused_parameters``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MeanAbsoluteError, MeanMetric, PearsonCorrCoef
from torchmetrics.segmentation import DiceScore, MeanIoU

from anaus_pl.checkpoints import check_checkpoint
from anaus_pl.losses.overlap import hard_dice, hard_iou
from anaus_pl.losses.segmentation import bce_dice_loss
from anaus_pl.models.lpsam import LPSAM, LPSAMConfig, build_lpsam, count_parameters
from anaus_pl.models.prompt_sampling import sample_prompts
from anaus_pl.randomness import run_seed, step_generator
from anaus_pl.schedules import warmup_cosine
from anaus_pl.tasks.overlays import comparison_grid, prediction_labels
from anaus_pl.tasks.stage_checkpoints import load_stage_checkpoint, submodule_state

log = logging.getLogger(__name__)

PARTS = ("image_encoder", "adapters", "prompt_encoder", "mask_decoder", "prompt_engine")
IOU_SMOOTH = 1.0  # the IoU target of the IoU head: (TP + 1) / (TP + FP + FN + 1)


class AdaptTask(LightningModule):
    """Adapts LP-SAM (adapter phase, then prompt phase); the checkpoint rebuilds the model alone.

    Args:
        model: the LP-SAM to build (its ``image_size`` is the data's letterbox size: LightningCLI links it).
        classes: the data's vocabulary, in order (LightningCLI links ``data.classes``); ``model.classes``
            may be left empty, else it must equal them.
    """

    checkpoint_stage = "adapt"  # what ``fit --ckpt_path`` must be (checked before the model is built)

    def __init__(
        self,
        model: LPSAMConfig,
        classes: Sequence[str],
        adapter_epochs: int = 1,
        adapter_trainable: Sequence[str] = ("adapters",),
        prompt_trainable: Sequence[str] = ("prompt_engine", "mask_decoder"),
        adapter_lr: float = 5e-4,
        prompt_lr: float = 5e-4,
        weight_decay: float = 1e-4,
        warmup_steps: int = 0,
        dice_weight: float = 0.15,
        iou_weight: float = 1.0,
        box_jitter: float = 0.1,
        overlay_images: int = 4,
        adapter_iou_loss: bool = False,
    ) -> None:
        super().__init__()
        config = model if isinstance(model, LPSAMConfig) else LPSAMConfig(**model)
        if config.classes and list(config.classes) != list(classes):
            raise ValueError(
                f"model.classes {list(config.classes)} differ from the data's vocabulary {list(classes)}; "
                "remove model.classes or make them match"
            )
        config = replace(config, classes=list(classes))
        for name, parts in (("adapter_trainable", adapter_trainable), ("prompt_trainable", prompt_trainable)):
            unknown = sorted(set(parts) - set(PARTS))
            if unknown:
                raise ValueError(f"{name}: unknown parts {unknown}; choose from {list(PARTS)}")
        if adapter_epochs < 0:
            raise ValueError(f"adapter_epochs must be >= 0, got {adapter_epochs}")
        self.save_hyperparameters(ignore=["model", "classes"])
        self.hparams["model"] = asdict(config)
        self.config = config
        self.trainable = {"adapter": set(adapter_trainable), "prompt": set(prompt_trainable)}
        self.model: LPSAM | None = None

    @staticmethod
    def check_config(init_args: dict[str, Any]) -> None:
        """Pre-flight (:mod:`anaus_pl.preflight`): the SAM weights to start from look like a checkpoint."""
        model = init_args["model"]
        if model["pretrained"] and model["checkpoint"]:
            check_checkpoint(model["checkpoint"], "sam")

    # ---------------------------------------------------------------- set-up
    @property
    def phase(self) -> str:
        return "adapter" if self.current_epoch < self.hparams.adapter_epochs else "prompt"

    def configure_model(self) -> None:
        if self.model is not None:
            return
        self.model = build_lpsam(self.config)
        used = self.trainable["adapter"] | self.trainable["prompt"]
        for part, parameters in self.model.parameter_groups().items():
            for parameter in parameters:
                parameter.requires_grad_(part in used)
        classes = len(self.model.vocabulary)
        self.val_dice = DiceScore(num_classes=classes, average="none", input_format="one-hot")
        self.val_iou = MeanIoU(num_classes=classes, per_class=True, input_format="one-hot")
        self.val_prompted_dice = MeanMetric()
        self.iou_mae = MeanAbsoluteError()
        self.iou_pearson = PearsonCorrCoef()
        for phase in ("adapter", "prompt"):
            count = sum(count_parameters(getattr(self.model, p)) for p in self.trainable[phase])
            log.info(
                "LP-SAM %s phase: %.2fM trainable parameters (%s)",
                phase,
                count / 1e6,
                ", ".join(sorted(self.trainable[phase])),
            )
        log.info(
            "LP-SAM total: %.2fM parameters, adapters %.2fM",
            count_parameters(self.model) / 1e6,
            count_parameters(self.model.adapters) / 1e6,
        )

    def configure_optimizers(self):
        hp = self.hparams
        groups = self.model.parameter_groups()
        used = [p for p in PARTS if any(p in self.trainable[ph] for ph in self.trainable)]
        optimizer = torch.optim.AdamW(
            [{"params": groups[p], "name": p, "lr": 1.0} for p in used], lr=1.0, weight_decay=hp.weight_decay
        )
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        boundary = min(total, hp.adapter_epochs * per_epoch)
        spans = {"adapter": (0, boundary, hp.adapter_lr), "prompt": (boundary, total - boundary, hp.prompt_lr)}

        def schedule(part: str):
            def factor(step: int) -> float:
                phase = "adapter" if step < boundary else "prompt"
                if part not in self.trainable[phase]:
                    return 0.0
                start, length, lr = spans[phase]
                return lr * warmup_cosine(step - start, length, hp.warmup_steps)

            return factor

        scheduler = LambdaLR(optimizer, [schedule(p) for p in used])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Parts idle in this phase get no update (and no AdamW moment change)."""
        for group in optimizer.param_groups:
            if group["name"] not in self.trainable[self.phase]:
                for parameter in group["params"]:
                    parameter.grad = None

    # ------------------------------------------------------------- forward
    def _targets(self, batch: dict) -> torch.Tensor:
        classes = torch.arange(1, len(self.model.vocabulary) + 1, device=batch["label"].device)
        return batch["label"].unsqueeze(1) == classes.view(1, -1, 1, 1)

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        encoder_learns = bool({"image_encoder", "adapters"} & self.trainable[self.phase])
        with torch.set_grad_enabled(encoder_learns and self.training and torch.is_grad_enabled()):
            return self.model.embed(images)

    def _prompted(self, batch: dict, generator: torch.Generator | None = None):
        """Logits (N, S, S), predicted IoU (N,) and masks (N, S, S) for every present (image, class) pair (Nones if none)."""
        targets = self._targets(batch) & batch["annotated"][:, :, None, None]
        pairs = targets.flatten(2).any(2).nonzero()
        if len(pairs) == 0:
            return None, None, None
        embeddings = self._embed(batch["image"])
        masks = targets[pairs[:, 0], pairs[:, 1]]
        points, labels, boxes = sample_prompts(masks, self.hparams.box_jitter, generator)
        logits, iou = self.model.decode_prompted(embeddings[pairs[:, 0]], (points, labels), boxes)
        return self.model.upsample(logits), iou, masks

    def _latent(self, batch: dict):
        embeddings = self._embed(batch["image"])
        logits, iou = self.model.decode_latent(batch["image"], embeddings)
        return self.model.upsample(logits), iou

    def _loss(
        self, logits: torch.Tensor, iou: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask_loss = bce_dice_loss(logits, targets, self.hparams.dice_weight)
        actual = hard_iou(logits.detach() > 0, targets, smooth=IOU_SMOOTH)
        return mask_loss, ((iou - actual) ** 2).mean()

    def _zero_loss(self) -> torch.Tensor:
        """A zero loss tied to this phase's trainable parameters (a batch with nothing annotated keeps DDP in step)."""
        groups = self.model.parameter_groups()
        return sum(p.sum() for part in self.trainable[self.phase] for p in groups[part] if p.requires_grad) * 0.0

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        iou_weight = self.hparams.iou_weight
        if self.phase == "adapter":
            generator = step_generator(run_seed(), self.global_rank, self.global_step, batch_idx, batch["image"].device)
            logits, iou, masks = self._prompted(batch, generator)
            if logits is None:
                return self._zero_loss()
            mask_loss, iou_loss = self._loss(logits, iou, masks)
            if not self.hparams.adapter_iou_loss:  # paper: (1 - a) BCE + a Dice only; the IoU MSE is logged
                iou_weight, iou_loss = 0.0, iou_loss.detach()
        else:
            # only the (image, class) pairs the image's data set annotates are decoded and supervised
            pairs = batch["annotated"].nonzero()
            embeddings = self._embed(batch["image"])
            if len(pairs) == 0:
                return self._zero_loss()
            logits, iou = self.model.decode_latent_pairs(batch["image"], embeddings, pairs)
            targets = self._targets(batch)[pairs[:, 0], pairs[:, 1]]
            mask_loss, iou_loss = self._loss(self.model.upsample(logits), iou, targets)
        loss = mask_loss + iou_weight * iou_loss
        size = batch["image"].shape[0]
        self.log_dict(
            {f"train/{self.phase}_mask_loss": mask_loss, f"train/{self.phase}_iou_loss": iou_loss}, batch_size=size
        )
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    # ----------------------------------------------------------- validation
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        if self.phase == "adapter":
            generator = torch.Generator(device=batch["image"].device).manual_seed(batch_idx)
            logits, _, masks = self._prompted(batch, generator)
            if logits is not None:
                self.val_prompted_dice.update(hard_dice(logits > 0, masks))
            return
        logits, iou = self._latent(batch)
        annotated = batch["annotated"][:, :, None, None]
        predicted = (logits > 0) & annotated
        targets = self._targets(batch) & annotated
        self.val_dice.update(predicted.long(), targets.long())
        self.val_iou.update(predicted.long(), targets.long())
        supervised = batch["annotated"]
        actual = hard_iou(logits > 0, self._targets(batch), smooth=IOU_SMOOTH)
        self.iou_mae.update(iou[supervised], actual[supervised])
        self.iou_pearson.update(iou[supervised].float(), actual[supervised])
        if batch_idx == 0:
            self._log_overlays(batch, logits)

    def on_validation_epoch_end(self) -> None:
        if self.phase == "adapter":
            if self.val_prompted_dice.update_count:
                self.log("val/prompted_dice", self.val_prompted_dice.compute())
            self.val_prompted_dice.reset()
            return
        dice, iou = self.val_dice.compute(), self.val_iou.compute()
        for k, name in enumerate(self.model.vocabulary.names):
            self.log(f"val/dice/{name}", dice[k])
            self.log(f"val/iou/{name}", iou[k])
        self.log("val/dice_mean", dice.nanmean(), prog_bar=True)
        self.log("val/iou_mean", iou.nanmean())
        self.log("val/iou_calibration_mae", self.iou_mae.compute())
        if self.iou_pearson.n_total.sum() > 1:
            self.log("val/iou_calibration_pearson", self.iou_pearson.compute())
        for metric in (self.val_dice, self.val_iou, self.iou_mae, self.iou_pearson):
            metric.reset()

    def _log_overlays(self, batch: dict, logits: torch.Tensor) -> None:
        experiment = getattr(self.logger, "experiment", None)
        count = self.hparams.overlay_images
        if count <= 0 or not hasattr(experiment, "add_image") or self.trainer.sanity_checking:
            return
        images = batch["image"][:count].float().cpu()
        truth = batch["label"][:count].cpu()
        predicted = prediction_labels(logits[:count].float().sigmoid().cpu())
        experiment.add_image("val/truth_vs_prediction", comparison_grid(images, truth, predicted), self.global_step)


def load_lpsam(checkpoint_path: str | Path, map_location: str | torch.device = "cpu") -> LPSAM:
    """Rebuild an adapted LP-SAM from an adapt-stage checkpoint alone (eval mode; the annotate stage's predictor).

    :class:`AdaptTask` keeps the model's :class:`LPSAMConfig` as the ``model`` hyper-parameter and the
    weights under ``model.``; the SAM file is not read again.
    """
    checkpoint = load_stage_checkpoint(checkpoint_path, "adapt", map_location)
    model = build_lpsam(LPSAMConfig(**checkpoint["hyper_parameters"]["model"]), load_weights=False)
    model.load_state_dict(submodule_state(checkpoint, "model."), strict=True)
    return model.to(map_location).eval()
