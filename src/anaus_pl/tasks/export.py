"""``anaus-pl export --ckpt CKPT --out DIR``: write a pretrain checkpoint's encoder as encoder.pt + encoder.json."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from anaus_pl.models.export import load_encoder, save_encoder
from anaus_pl.tasks.pretrain import checkpoint_encoder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="anaus-pl export", description="Write a pretrain checkpoint's online encoder as encoder.pt + encoder.json."
    )
    parser.add_argument(
        "--ckpt",
        required=True,
        type=Path,
        help="a pretrain Lightning checkpoint (e.g. runs/pretrain/default/checkpoints/last.ckpt)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory for encoder.pt and encoder.json")
    args = parser.parse_args(argv)
    backbone, meta = checkpoint_encoder(args.ckpt)
    weights = save_encoder(backbone, meta, args.out)
    load_encoder(weights)  # the written pair must load strictly
    print(f"wrote {weights} and {weights.with_name('encoder.json')}")
    return 0
