from collections import Counter

import pytest

from anaus_pl.data.folds import group_of, inner_split, make_folds, restrict_official
from anaus_pl.data.layouts.base import SampleRef


def _refs() -> list[SampleRef]:
    # 40 videos x 3 frames; classes 0/1/2 in proportion 2:1:1; frames of a video share the file part.
    return [SampleRef(f"v{v}.mp4#{f}", label=[0, 0, 1, 2][v % 4]) for v in range(40) for f in range(3)]


def test_folds_are_disjoint_complete_and_keep_videos_together() -> None:
    refs = _refs()
    folds = make_folds(refs, 5, seed=0, stratify=True)
    flat = [s for fold in folds for s in fold]
    assert sorted(flat) == sorted(r.source for r in refs) and len(flat) == len(set(flat))
    owner = {group_of(SampleRef(s)): k for k, fold in enumerate(folds) for s in fold}
    for k, fold in enumerate(folds):
        assert all(owner[group_of(SampleRef(s))] == k for s in fold)


def test_folds_are_stratified() -> None:
    refs = _refs()
    label = {r.source: r.label for r in refs}
    for fold in make_folds(refs, 5, seed=3, stratify=True):
        counts = Counter(label[s] for s in fold)
        assert counts == {0: 12, 1: 6, 2: 6}


def test_patients_never_in_two_folds() -> None:
    refs = [SampleRef(f"img{i}.png", patient=f"p{i % 7}", label=i % 2) for i in range(35)]
    folds = make_folds(refs, 5, seed=1, stratify=False)
    patient = {r.source: r.patient for r in refs}
    seen = [{patient[s] for s in fold} for fold in folds]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1 :])
    assert sum(len(f) for f in folds) == 35


def test_same_seed_same_folds_other_seed_other_folds() -> None:
    refs = _refs()
    assert make_folds(refs, 5, 7, True) == make_folds(refs, 5, 7, True)
    assert make_folds(refs, 5, 7, True) != make_folds(refs, 5, 8, True)


def test_too_few_groups_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cannot fill 5 folds"):
        make_folds([SampleRef(f"v{v}#0") for v in range(3)], 5, 0, stratify=False)


def test_inner_split_is_group_aware_and_complete() -> None:
    refs = _refs()
    train, val = inner_split(refs, 0.2, seed=0, stratify=True)
    assert len(train) + len(val) == len(refs)
    assert not {group_of(r) for r in train} & {group_of(r) for r in val}
    assert 0.15 <= len(val) / len(refs) <= 0.25


def test_official_folds_restricted_to_indexed_sources() -> None:
    refs = [SampleRef(f"{i}.png") for i in range(6)]
    folds, excluded = restrict_official([["0.png", "1.png", "gone.png"], ["2.png", "3.png"]], refs)
    assert folds == [["0.png", "1.png"], ["2.png", "3.png"]] and excluded == ["4.png", "5.png"]
    with pytest.raises(ValueError, match="overlap"):
        restrict_official([["0.png"], ["0.png"]], refs)


def test_subsample_is_seeded_stratified_and_keeps_every_class():
    from anaus_pl.data.folds import subsample

    refs = [SampleRef(f"img{i}.png", label=0 if i < 40 else 1) for i in range(50)]  # 40 of class 0, 10 of class 1
    part = subsample(refs, 0.1, seed=3, stratify=True)
    assert [r.label for r in part].count(0) == 4 and [r.label for r in part].count(1) == 1
    assert part == subsample(refs, 0.1, seed=3, stratify=True) != subsample(refs, 0.1, seed=4, stratify=True)
    assert [r.source for r in part] == sorted((r.source for r in part), key=lambda s: int(s[3:-4]))  # order kept
    assert subsample(refs, 1.0, seed=0, stratify=True) == refs
    assert len(subsample(refs[:3], 0.01, seed=0, stratify=False)) == 1
