"""Fine-tuning at scale: 2-process DDP (gloo) matches one process; bf16-mixed runs the evaluate stage on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer

from anaus_pl.data.datamodules.finetune import FoldDataModule, LoadedTask
from anaus_pl.evaluation import runner
from anaus_pl.evaluation.config import EvaluateConfig, TaskConfig
from anaus_pl.evaluation.kinds import get_kind
from anaus_pl.tasks.finetune import FinetuneModule

SRC = Path(__file__).resolve().parents[2] / "src"
# 9 test images: the distributed sampler pads rank 1 with a duplicate that the gather must drop.
# 8 validation images split evenly, so the synchronised mean equals the one-process mean exactly.
VAL, TEST = np.arange(8), np.arange(8, 17)


def disks(n: int = 17, size: int = 32) -> LoadedTask:
    """Bright disks on speckle, class = whether the disk lies in the left half."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), np.uint8)
    labels = np.zeros(n, np.int64)
    for i in range(n):
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 <= (size // 6) ** 2
        labels[i] = int(cx < size // 2)
    images = (rng.normal(50, 10, masks.shape) + 150 * masks).clip(0, 255).astype(np.uint8)
    return LoadedTask([f"{i}.png" for i in range(n)], images, masks, labels, np.full((n, 2), size))


def module(head: str) -> FinetuneModule:
    torch.manual_seed(0)  # the same random weights in every process
    kind = get_kind("classification" if head == "linear" else "segmentation")
    return FinetuneModule(kind, head=head, image_size=32, fpn_channels=16, mode="full")


def evaluate(trainer: Trainer, head: str) -> dict:
    """Validation metric and the (gathered) test predictions of one head."""
    model = module(head)
    datamodule = FoldDataModule(disks(), VAL, VAL, TEST, batch_size=4, augment=False)
    validated = trainer.validate(model, datamodule, verbose=False)[0]
    trainer.test(model, datamodule, verbose=False)
    return {
        "val": validated[model.monitor],
        "index": torch.cat(model.test_outputs["index"]).tolist(),
        "prediction": torch.cat(model.test_outputs["prediction"]).float().flatten(1).tolist(),
    }


SCRIPT = """
import json, sys
from lightning.pytorch import Trainer
from test_finetune_scale import evaluate

trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False,
                  enable_model_summary=False, enable_checkpointing=False)
results = {head: evaluate(trainer, head) for head in ("linear", "fpn")}
if trainer.global_rank == 0:
    with open(sys.argv[1], "w") as handle:
        json.dump({"world_size": trainer.world_size, **results}, handle)
"""


@pytest.mark.ddp
def test_two_ranks_give_the_one_process_validation_metric_and_test_fold(tmp_path: Path) -> None:
    script = tmp_path / "ddp_finetune.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), str(SRC), os.environ.get("PYTHONPATH", "")]),
    )
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ddp.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((tmp_path / "ddp.json").read_text())
    assert two["world_size"] == 2

    one = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    for head in ("linear", "fpn"):
        single = evaluate(one, head)
        assert two[head]["index"] == single["index"] == TEST.tolist(), head
        np.testing.assert_allclose(two[head]["prediction"], single["prediction"], atol=1e-5, err_msg=head)
        assert two[head]["val"] == pytest.approx(single["val"], abs=1e-6), head


def test_evaluate_folds_run_in_bf16_mixed_on_cpu(data_root: Path, tmp_path: Path) -> None:
    """One classification and one FPN segmentation fold, ``precision: bf16-mixed``: finite loss, results."""
    tasks = [
        TaskConfig(
            "cls",
            "fake-cls",
            str(data_root),
            "classification",
            protocols=["finetune"],
            image_size=32,
            epochs=1,
            batch_size=8,
            lr=1e-3,
        ),
        TaskConfig(
            "seg",
            "fake-seg",
            str(data_root),
            "segmentation",
            protocols=["finetune"],
            head="fpn",
            image_size=32,
            epochs=1,
            batch_size=8,
            lr=1e-3,
            fpn_channels=16,
        ),
    ]
    config = EvaluateConfig(
        tasks=tasks,
        inits=["random"],
        out_dir=str(tmp_path / "out"),
        n_folds=3,
        accelerator="cpu",
        precision="bf16-mixed",
        only_folds=[0],
    )
    runner.evaluate(config)
    for task, metric in (("cls", "accuracy"), ("seg", "dice")):
        record = json.loads((tmp_path / "out" / "results" / task / "finetune" / "random" / "r0_fold0.json").read_text())
        assert np.isfinite(record["best_val"]) and 0 <= record["metrics"][metric] <= 1, record
