"""``anaus-pl phantom --out DIR --seed N --size small|full``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from anaus_pl.data.phantom.generate import SIZES, write_phantom
from anaus_pl.data.phantom.writers import WRITERS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anaus-pl phantom",
        description="Write simulated B-mode data sets in the public layouts (see docs/phantom.md).",
    )
    parser.add_argument("--out", required=True, help="output folder; gets one sub-folder per layout and .complete last")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="small",
        help="small: seconds, for tests and the default chain; full: about 10x",
    )
    parser.add_argument(
        "--layouts", nargs="+", choices=sorted(WRITERS), default=None, help="only these layouts (default all)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    out = write_phantom(args.out, args.seed, args.size, tuple(args.layouts) if args.layouts else None)
    print(f"phantom ({args.size}, seed {args.seed}) written to {out} in {time.perf_counter() - start:.1f} s")
    return 0
