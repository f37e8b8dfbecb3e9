"""Scenes: label maps line up with what is drawn, and the anatomy behaves (contraction, shadowing, lung artefacts)."""

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from anaus_pl.data.phantom.cardiac import LA, LV, MYOCARDIUM, systole
from anaus_pl.data.phantom.recordings import breast_frame, cardiac_clip, lung_clip, thyroid_frame
from anaus_pl.data.phantom.thyroid import GLAND, NODULE


def ring_around(mask, width=6):
    return binary_dilation(mask, iterations=width) & ~binary_dilation(mask, iterations=2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_anechoic_thyroid_nodule_mask_lines_up_with_the_dark_region(seed):
    rng = np.random.default_rng(seed)
    image, labels = thyroid_frame(rng, (200, 240), "cystic")
    nodule = labels == NODULE
    assert nodule.sum() > 50
    assert image[nodule].mean() < 0.5 * image[ring_around(nodule)].mean()
    # the gland label surrounds the nodule
    assert (labels[ring_around(nodule, 3)] >= GLAND).mean() > 0.8


def test_thyroid_without_nodule_has_a_gland_only():
    _, labels = thyroid_frame(np.random.default_rng(4), (180, 233), "none")
    assert set(np.unique(labels)) == {0, GLAND}


def test_breast_lesions_and_normal_scans():
    rng = np.random.default_rng(5)
    image, lesions = breast_frame(rng, (200, 250), "benign", n_lesions=2)
    assert set(np.unique(lesions)) == {0, 1, 2}
    _, normal = breast_frame(rng, (200, 250), "normal")
    assert not normal.any()


def test_malignant_breast_lesions_shadow_more_than_benign_ones():
    def shadow_ratio(kind, seed):
        image, lesion = breast_frame(np.random.default_rng(seed), (220, 240), kind)
        rows, cols = np.nonzero(lesion)
        below = image[rows.max() + 5 :, cols.min() : cols.max() + 1].astype(float)
        return below.mean() / image[rows.max() + 5 :].astype(float).mean()

    malignant = np.mean([shadow_ratio("malignant", s) for s in range(6)])
    benign = np.mean([shadow_ratio("benign", s) for s in range(6)])
    assert malignant < benign - 0.2


def test_cardiac_cycle_contracts_the_lv_and_conserves_myocardium():
    frames, labels = cardiac_clip(np.random.default_rng(7), (200, 240), "4CH", [0.0, 1.0])
    ed, es = labels
    assert {LV, MYOCARDIUM, LA} <= set(np.unique(ed))
    assert (es == LV).sum() < 0.85 * (ed == LV).sum()
    assert (es == MYOCARDIUM).sum() == pytest.approx((ed == MYOCARDIUM).sum(), rel=0.2)
    cavity = ed == LV
    assert frames[0][cavity].mean() < 0.5 * frames[0][labels[0] == MYOCARDIUM].mean()


def test_systole_curve():
    assert systole(0.0) == pytest.approx(0.0)
    assert systole(0.4) == pytest.approx(1.0)
    assert systole(1.0) == pytest.approx(0.0)
    assert 0.0 < systole(0.7) < 1.0


def test_lung_classes_differ_below_the_pleura():
    """B-lines brighten the air region of covid scans against regular ones (on average, not always)."""

    def brightness(kind, seed):
        frame = lung_clip(np.random.default_rng(seed), (200, 230), kind, 1)[0]
        return frame[130:190, 60:170].astype(float).mean()

    covid = np.mean([brightness("covid", s) for s in range(6)])
    regular = np.mean([brightness("regular", s) for s in range(6)])
    assert covid > regular + 5
