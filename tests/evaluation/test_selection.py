"""BestWeights: the best epoch's weights in memory, as ModelCheckpoint(save_top_k=1) + test(ckpt_path="best")."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import LightningModule

from anaus_pl.evaluation.selection import BestWeights


class Tiny(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.norm = torch.nn.BatchNorm1d(1)


def run_epochs(selector: BestWeights, module: Tiny, scores: list[float]) -> list[dict[str, torch.Tensor]]:
    """Each epoch sets the weights to the epoch number, then 'validates' with the given score."""
    states = []
    for epoch, score in enumerate(scores):
        with torch.no_grad():
            module.layer.weight.fill_(epoch)
            module.norm.running_mean.fill_(10 + epoch)
        states.append({k: v.clone() for k, v in module.state_dict().items()})
        trainer = SimpleNamespace(
            sanity_checking=False, callback_metrics={"val/score": torch.tensor(score)}, current_epoch=epoch
        )
        selector.on_validation_end(trainer, module)
    return states


def test_restores_the_first_best_epoch_including_buffers():
    module, selector = Tiny(), BestWeights("val/score")
    states = run_epochs(selector, module, [0.5, 0.8, 0.8, 0.6])
    assert selector.best_epoch == 1 and selector.best_score == pytest.approx(0.8)
    selector.restore(module)
    for name, value in module.state_dict().items():
        assert torch.equal(value, states[1][name]), name


def test_a_nan_first_score_is_replaced_by_the_first_real_one_and_sanity_checks_are_ignored():
    module, selector = Tiny(), BestWeights("val/score")
    selector.on_validation_end(
        SimpleNamespace(sanity_checking=True, callback_metrics={"val/score": torch.tensor(9.0)}, current_epoch=0),
        module,
    )
    assert selector.state is None
    run_epochs(selector, module, [math.nan, 0.3, 0.2])
    assert selector.best_epoch == 1 and selector.best_score == pytest.approx(0.3)


def test_restore_without_a_validation_says_so():
    with pytest.raises(RuntimeError, match="no validation logged 'val/score'"):
        BestWeights("val/score").restore(Tiny())
