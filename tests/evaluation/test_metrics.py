import math

import numpy as np
import pytest
import torch

from anaus_pl.evaluation.metrics import classification_metrics, hd95, segmentation_per_image


def _masks(*arrays: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).bool()


def _square(size: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_perfect_empty_and_missed_masks_follow_the_documented_policy() -> None:
    lesion, empty = _square(8, 2, 6, 2, 6), np.zeros((8, 8), bool)
    # rows: perfect, empty-vs-empty, prediction on an empty truth, missed lesion
    values = segmentation_per_image(_masks(lesion, empty, lesion, empty), _masks(lesion, empty, empty, lesion))
    assert values["dice"] == [1.0, 1.0, 0.0, 0.0]
    assert values["iou"] == [1.0, 1.0, 0.0, 0.0]
    assert values["ppv"] == [1.0, 1.0, 0.0, 0.0]
    assert values["sensitivity"] == [1.0, 1.0, 0.0, 0.0]
    assert values["hd95"] == [0.0, 0.0, pytest.approx(math.hypot(8, 8)), pytest.approx(math.hypot(8, 8))]


def test_half_overlap_matches_the_formulas() -> None:
    truth = _square(10, 0, 4, 0, 4)  # 16 pixels
    prediction = _square(10, 0, 4, 2, 6)  # 16 pixels, 8 shared
    values = segmentation_per_image(_masks(prediction), _masks(truth))
    tp, fp, fn = 8, 8, 8
    assert values["dice"][0] == pytest.approx(2 * tp / (2 * tp + fp + fn)) == pytest.approx(0.5)
    assert values["iou"][0] == pytest.approx(tp / (tp + fp + fn)) == pytest.approx(1 / 3)
    assert values["ppv"][0] == pytest.approx(0.5) and values["sensitivity"][0] == pytest.approx(0.5)
    # boundaries two columns apart: the far edge of each square is 2 px from the other's boundary
    assert values["hd95"][0] == pytest.approx(2.0)


def test_hd95_of_a_shifted_square_and_of_itself() -> None:
    a, b = _square(20, 5, 10, 5, 10), _square(20, 5, 10, 8, 13)
    assert hd95(a, a) == 0.0
    assert hd95(a, b) == pytest.approx(3.0)
    assert hd95(a, b) == hd95(b, a)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="one shape"):
        segmentation_per_image(torch.zeros(1, 4, 4, dtype=torch.bool), torch.zeros(1, 4, 5, dtype=torch.bool))


def test_perfect_and_constant_classifier() -> None:
    targets = torch.tensor([0, 1, 2, 2, 1, 0])
    perfect = torch.nn.functional.one_hot(targets, 3).float()
    values = classification_metrics(perfect, targets, ["a", "b", "c"])
    assert values["accuracy"] == 1.0 and values["macro_f1"] == 1.0 and values["auroc"] == 1.0
    assert values["precision"] == {"a": 1.0, "b": 1.0, "c": 1.0} and values["confusion"] == [
        [2, 0, 0],
        [0, 2, 0],
        [0, 0, 2],
    ]
    always_a = torch.tensor([[0.9, 0.05, 0.05]] * 6)
    values = classification_metrics(always_a, targets, ["a", "b", "c"])
    assert values["accuracy"] == pytest.approx(1 / 3)
    assert values["recall"] == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert values["macro_f1"] == pytest.approx((2 * (1 / 3) / (1 / 3 + 1)) / 3)
    assert values["confusion"] == [[2, 0, 0], [2, 0, 0], [2, 0, 0]]
