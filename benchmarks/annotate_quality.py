"""Agreement of an anatomy store's LP-SAM masks with the true anatomy of the frames that have it.

For every stored frame whose source is an item of a labelled layout (the
phantom's CAMUS frames in the default chain), the true label map is letterboxed
like the frame and compared class by class (Dice, per image, then averaged over
images where the class is in the truth or the prediction). Frames of patients in
the adapt stage's validation split are reported apart from the others, since
LP-SAM trained on the rest.

    python benchmarks/annotate_quality.py --store runs/annotate/default/anatomy.h5 \
        --layout camus --root data/phantom/camus
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import BenchmarkRun, add_common_args
from anaus_pl.data.anatomy_store import AnatomyStore
from anaus_pl.data.datamodules.adapt import split_by_patient
from anaus_pl.data.layouts import get_layout
from anaus_pl.data.letterbox import letterbox
from anaus_pl.data.vocabulary import AnatomyVocabulary


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean maps (NaN when both are empty)."""
    total = predicted.sum() + truth.sum()
    return float("nan") if total == 0 else 2.0 * float((predicted & truth).sum()) / float(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, "annotate_quality")
    parser.add_argument("--store", type=Path, default=Path("runs/annotate/default/anatomy.h5"))
    parser.add_argument("--layout", default="camus")
    parser.add_argument("--root", default="data/phantom/camus")
    parser.add_argument("--val-fraction", type=float, default=0.15, help="the adapt stage's val_fraction")
    parser.add_argument("--seed", type=int, default=0, help="the adapt stage's split seed")
    args = parser.parse_args()
    run = BenchmarkRun("annotate_quality", args)

    store = AnatomyStore(args.store)
    vocabulary = AnatomyVocabulary(store.classes)
    layout = get_layout(args.layout, args.root)
    refs = {ref.source: ref for ref in layout.index()}
    _, val_idx = split_by_patient(list(refs.values()), args.val_fraction, args.seed)
    held_out = {list(refs.values())[i].patient for i in val_idx}
    scores: dict[str, dict[str, list[float]]] = {"held_out": {}, "adapt_train": {}}
    for index in range(len(store)):
        item = store[index]
        ref = refs.get(item["source"])
        if ref is None:
            continue
        sample = layout.load(ref)
        truth, _ = letterbox(vocabulary.remap(sample.mask, layout.anatomy), store.size, nearest=True)
        group = scores["held_out" if ref.patient in held_out else "adapt_train"]
        for name in layout.anatomy:
            value = vocabulary.value_of(name)
            group.setdefault(name, []).append(dice(item["mask"] == value, truth == value))
    results = {
        group: {name: {"dice": float(np.nanmean(values)), "frames": len(values)} for name, values in classes.items()}
        for group, classes in scores.items()
    }
    for group in results.values():
        if group:
            group["mean"] = {"dice": float(np.mean([c["dice"] for c in group.values()]))}
    held = results["held_out"]
    summary = " ".join(f"{name} {v['dice']:.3f}" for name, v in held.items()) if held else "no held-out frames"
    run.finish(results, f"held-out {args.layout} frames: {summary}")


if __name__ == "__main__":
    main()
