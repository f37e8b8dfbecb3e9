import numpy as np
import pytest

from anaus_pl.data.letterbox import letterbox, letterbox_shape, unletterbox
from anaus_pl.data.vocabulary import AnatomyVocabulary


@pytest.mark.parametrize("hw", [(1080, 1928), (7, 3), (64, 64), (255, 17)])
def test_letterbox_round_trip_of_label_maps(hw):
    h, w = hw
    labels = np.zeros(hw, np.uint8)
    labels[h // 4 : 3 * h // 4 + 1, w // 4 : 3 * w // 4 + 1] = 3
    boxed, valid = letterbox(labels, 64, nearest=True)
    assert boxed.shape == (64, 64) and max(valid) == 64
    assert set(np.unique(boxed)) <= {0, 3}
    assert not boxed[valid[0] :, :].any() and not boxed[:, valid[1] :].any()
    back = unletterbox(boxed, valid, hw, nearest=True)
    assert back.shape == hw
    assert (back == labels).mean() > 0.95


def test_letterbox_shape_keeps_aspect():
    assert letterbox_shape(1080, 1920, 256) == (144, 256)
    assert letterbox_shape(10, 5, 4) == (4, 2)


def test_vocabulary_remap_and_errors():
    vocab = AnatomyVocabulary(["thyroid_gland", "lv", "myocardium"])
    camus = np.array([[0, 1, 2, 3]], np.uint8)
    np.testing.assert_array_equal(vocab.remap(camus, ["lv", "myocardium", "la"]), [[0, 2, 3, 0]])
    assert vocab.value_of("lv") == 2
    with pytest.raises(ValueError, match="no name"):
        vocab.remap(np.array([[4]], np.uint8), ["lv"])
    with pytest.raises(ValueError, match="unique"):
        AnatomyVocabulary(["a", "a"])
    assert AnatomyVocabulary.union([["a", "b"], ["b", "c"]]).names == ("a", "b", "c")
