"""The annotate stage with a real (tiny, untrained) LP-SAM checkpoint instead of the stand-in."""

from __future__ import annotations

from dataclasses import asdict

import torch
from annotate_runs import run_annotate, write_config

from anaus_pl.data.anatomy_store import AnatomyStore
from anaus_pl.models.lpsam import LPSAMConfig, build_lpsam
from anaus_pl.tasks.adapt import load_lpsam


def test_annotate_with_an_lpsam_checkpoint(annotate_inputs, tmp_path):
    config = LPSAMConfig(classes=["lv", "myocardium"], encoder="vit_micro", image_size=64, pretrained=False)
    model = build_lpsam(config)
    checkpoint = tmp_path / "last.ckpt"
    torch.save(
        {
            "hyper_parameters": {"model": asdict(config)},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        checkpoint,
    )
    store_path = tmp_path / "anatomy.h5"
    run_annotate(
        write_config(
            tmp_path / "cfg.yaml", annotate_inputs, store_path, checkpoint, loader="anaus_pl.tasks.adapt:load_lpsam"
        )
    )
    store = AnatomyStore(store_path)
    assert store.classes == list(load_lpsam(checkpoint).vocabulary.names) == ["lv", "myocardium"]
    assert store.size == 64 and len(store) > 0
    item = store[0]
    assert item["mask"].shape == (64, 64) and item["mask"].max() <= 2 and item["scores"].shape == (2,)
