# anaus-pl: every target sets up its own virtual environment on first use.
#   make            run the whole chain on the embedded phantom default
#   make test       install, then run the full test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN ?= default
PHANTOM := data/phantom
PHANTOM_DONE := $(PHANTOM)/.complete
ADAPT_CKPT := runs/adapt/$(RUN)/checkpoints/last.ckpt
STORE := runs/annotate/$(RUN)/anatomy.h5
ENCODER := runs/pretrain/$(RUN)/encoder.pt
PYTEST_ARGS ?=

export NO_ALBUMENTATIONS_UPDATE := 1
export JSONARGPARSE_DEPRECATION_WARNINGS := off
export PYTHONUNBUFFERED := 1

.PHONY: all install data montage adapt annotate pretrain evaluate chain test test-fast test-slurm bench study clean-runs

all: chain

chain: adapt annotate pretrain evaluate

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch and torchvision first, pinned as a pair that imports together
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev,litemedsam,formats]'
	touch $@

install: $(STAMP)

$(PHANTOM_DONE): | $(STAMP)
	$(BIN)/anaus-pl phantom --out $(PHANTOM) --seed 0 --size small

data: $(PHANTOM_DONE)

adapt: $(STAMP) $(PHANTOM_DONE)
	$(BIN)/anaus-pl fit --config stages/adapt.yaml

$(ADAPT_CKPT):
	test -f $@ || $(MAKE) adapt

annotate: $(STAMP) $(PHANTOM_DONE) $(ADAPT_CKPT)
	$(BIN)/anaus-pl annotate --config stages/annotate.yaml

$(STORE):
	test -f $@ || $(MAKE) annotate

pretrain: $(STAMP) $(STORE)
	$(BIN)/anaus-pl fit --config stages/pretrain.yaml

$(ENCODER):
	test -f $@ || $(MAKE) pretrain

evaluate: $(STAMP) $(PHANTOM_DONE) $(ENCODER)
	$(BIN)/anaus-pl evaluate --config stages/evaluate.yaml

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not ddp" $(PYTEST_ARGS)

# A throwaway local SLURM cluster (Debian packages) runs the real chain (tiny sizes) through slurm/*.sbatch.
test-slurm: $(STAMP)
	PYTHON=$(BIN)/python scripts/test_slurm.sh $(PYTEST_ARGS)

montage: $(STAMP)
	$(BIN)/python -m anaus_pl.data.phantom.montage docs/phantom_montage.png

# The phantom ablation study (ANAUS vs its ablations, DetCon, BYOL, random) -> docs/RESULTS.md.
study: $(STAMP)
	$(BIN)/anaus-pl study --config configs/study/phantom.yaml

BENCH_ARGS ?=

# Speed and memory measurements (JSON under benchmarks/results/, one summary line each).
bench: $(STAMP)
	$(BIN)/python benchmarks/encoder.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/loader.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/memory.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/annotate.py --stub 256 $(BENCH_ARGS)
	$(BIN)/python benchmarks/pretrain.py $(BENCH_ARGS)
	@$(BIN)/python benchmarks/_common.py

clean-runs:
	rm -rf runs
