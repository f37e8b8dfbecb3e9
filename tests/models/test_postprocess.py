import numpy as np
import pytest
import torch

from anaus_pl.models.postprocess import PostProcess, filter_regions, label_maps, resolve_labels


def test_threshold_overlap_and_valid_area_on_a_hand_made_map():
    # 1 frame, 2 classes, 2 x 3 pixels
    p1 = [[0.9, 0.6, 0.2], [0.7, 0.1, 0.9]]
    p2 = [[0.8, 0.7, 0.3], [0.4, 0.45, 0.95]]
    probabilities = torch.tensor([[p1, p2]])
    labels = resolve_labels(probabilities, torch.tensor([0.5, 0.5]), torch.tensor([[2, 3]]))
    # overlap -> larger probability wins; nothing above threshold -> 0
    np.testing.assert_array_equal(labels[0].numpy(), [[1, 2, 0], [1, 0, 2]])
    per_class = resolve_labels(probabilities, torch.tensor([0.5, 0.75]), torch.tensor([[2, 3]]))
    np.testing.assert_array_equal(per_class[0].numpy(), [[1, 1, 0], [1, 0, 2]])
    cropped = resolve_labels(probabilities, torch.tensor([0.5, 0.5]), torch.tensor([[1, 2]]))
    np.testing.assert_array_equal(cropped[0].numpy(), [[1, 2, 0], [0, 0, 0]])
    # a class the frame cannot hold is no candidate: the allowed class takes the pixels it reaches
    only_2 = resolve_labels(
        probabilities, torch.tensor([0.5, 0.5]), torch.tensor([[2, 3]]), torch.tensor([[False, True]])
    )
    np.testing.assert_array_equal(only_2[0].numpy(), [[2, 2, 0], [0, 0, 2]])


def test_min_area_and_largest_component():
    label_map = np.zeros((6, 6), np.uint8)
    label_map[0:2, 0:2] = 1  # 4 px
    label_map[4, 4] = 1  # 1 px
    label_map[0:3, 4:6] = 2  # 6 px
    label_map[5, 0:3] = 2  # 3 px
    np.testing.assert_array_equal(filter_regions(label_map, 2, 0, False), label_map)
    small_gone = filter_regions(label_map, 2, 4, False)
    assert small_gone[4, 4] == 0 and (small_gone[5, 0:3] == 0).all() and (small_gone[0:2, 0:2] == 1).all()
    largest = filter_regions(label_map, 2, 0, True)
    assert largest[4, 4] == 0 and (largest[0:3, 4:6] == 2).all() and (largest[5] == 0).all()
    assert label_map[4, 4] == 1  # input untouched


def test_config_checks_and_empty_batch():
    with pytest.raises(ValueError, match="one per class"):
        PostProcess(threshold=[0.5]).thresholds(2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PostProcess(threshold=1.5).thresholds(1)
    assert label_maps(torch.zeros(0, 2, 4, 4), torch.zeros(0, 2, dtype=torch.int32), PostProcess()).shape == (0, 4, 4)
