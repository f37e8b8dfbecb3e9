#!/usr/bin/env bash
# The prepared device check (at most 8 minutes of stages on one CUDA machine after `make install data`):
# adapt, annotate, pretrain (2-process DDP when two GPUs exist), evaluate, each for a few bf16 steps on
# the phantom, then the pretrain benchmark at batch 64, 224 px; prints one summary table.
#   bash benchmarks/gpu_check.sh            # on the GPU machine (installs with `make install` only)
#   bash benchmarks/gpu_check.sh --cpu      # dry run of the same logic on the CPU, tiny sizes, no install
# Extra arguments go to benchmarks/gpu_check.py (--out, --budget-s).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --cpu "* ]]; then
    make install data
fi
PYTHON=${PYTHON:-.venv/bin/python}
exec "$PYTHON" benchmarks/gpu_check.py "$@"
