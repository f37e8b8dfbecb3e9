"""Compare two checkpoints of one stage tensor by tensor: how many are bitwise equal, and the largest difference.

    python scripts/compare_checkpoints.py adapt runs/adapt/a/checkpoints/last.ckpt runs/adapt/b/checkpoints/last.ckpt

The reproducibility checks in docs/adapt.md use it. Exit code 0 when every tensor is equal, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

import torch

from anaus_pl.checkpoints import EXPECTED, load_checkpoint


def compare(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> tuple[int, int, float]:
    """(tensors equal, tensors compared, largest absolute difference) over the keys both state dicts hold."""
    shared = sorted(set(first) & set(second))
    equal = sum(torch.equal(first[key], second[key]) for key in shared)
    largest = max(((first[k].double() - second[k].double()).abs().max().item() for k in shared), default=0.0)
    return equal, len(shared), largest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=sorted(EXPECTED), help="the stage that wrote both checkpoints")
    parser.add_argument("first")
    parser.add_argument("second")
    args = parser.parse_args(argv)
    first, second = (load_checkpoint(path, args.stage)["state_dict"] for path in (args.first, args.second))
    equal, total, largest = compare(first, second)
    print(f"{equal}/{total} tensors bitwise equal; largest absolute difference {largest:.3g}")
    if set(first) != set(second):
        print(f"keys in only one checkpoint: {sorted(set(first) ^ set(second))[:10]}")
    return 0 if equal == total and set(first) == set(second) else 1


if __name__ == "__main__":
    sys.exit(main())
