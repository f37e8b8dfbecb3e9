# anaus-pl: every target sets up its own virtual environment on first use.
#   make                    run the whole chain on the embedded phantom default
#   make test               install, then run the full test suite (what CI runs)
#   make install TORCH=cpu  choose the torch build: cu130 (default), cu126 or cpu (see README, "Install")
#   make RUN=trial2         every stage reads and writes runs/<stage>/trial2/ (default: runs/<stage>/default/)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN ?= default
TORCH ?= cu130
TORCH_VERSION := 2.14.1
TORCHVISION_VERSION := 0.29.1
# Where each build comes from: PyPI's Linux wheels are the CUDA 13.0 build; the others are on PyTorch's index.
TORCH_SOURCE_cu130 :=
TORCH_SOURCE_cu126 := --index-url https://download.pytorch.org/whl/cu126
TORCH_SOURCE_cpu := --index-url https://download.pytorch.org/whl/cpu
TORCH_LABEL_cu130 :=
TORCH_LABEL_cu126 := +cu126
TORCH_LABEL_cpu := +cpu
ifeq ($(filter $(TORCH),cpu cu126 cu130),)
$(error TORCH=$(TORCH): choose cpu, cu126 or cu130)
endif
TORCH_CHOICE := $(VENV)/.torch-choice
PHANTOM := data/phantom
PHANTOM_DONE := $(PHANTOM)/.complete
ADAPT_CKPT := runs/adapt/$(RUN)/checkpoints/last.ckpt
STORE := runs/annotate/$(RUN)/anatomy.h5
ENCODER := runs/pretrain/$(RUN)/encoder.pt
PYTEST_ARGS ?=

export NO_ALBUMENTATIONS_UPDATE := 1
export JSONARGPARSE_DEPRECATION_WARNINGS := off
export PYTHONUNBUFFERED := 1

.PHONY: all install constraints data montage adapt annotate pretrain evaluate chain lint format test test-fast test-slurm bench study clean-runs FORCE

all: chain

chain: adapt annotate pretrain evaluate

# Rewritten only when TORCH changes, so that a new choice reinstalls torch.
$(TORCH_CHOICE): FORCE
	@mkdir -p $(VENV)
	@[ "$$(cat $@ 2>/dev/null)" = "$(TORCH)" ] || echo "$(TORCH)" > $@

$(STAMP): pyproject.toml constraints.txt $(TORCH_CHOICE)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch and torchvision first, pinned as a pair built for TORCH=$(TORCH); another build is replaced
	if [ "$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null)" \
	     != "$(TORCH_VERSION)$(TORCH_LABEL_$(TORCH))" ]; then $(BIN)/python -m pip uninstall -q -y torch torchvision; fi
	$(BIN)/python -m pip install -q $(TORCH_SOURCE_$(TORCH)) \
	  torch==$(TORCH_VERSION)$(TORCH_LABEL_$(TORCH)) torchvision==$(TORCHVISION_VERSION)$(TORCH_LABEL_$(TORCH))
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,litemedsam,formats]'
	touch $@

install: $(STAMP)

# The versions pinned for `make install`: what this environment resolved (torch's own wheels excluded).
constraints: $(STAMP)
	{ sed -n '1,/^# Regenerate/p' constraints.txt; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -vE '^(torch|torchvision|triton|nvidia-[^=]*|cuda-[^=]*)=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

$(PHANTOM_DONE): | $(STAMP)
	$(BIN)/anaus-pl phantom --out $(PHANTOM) --seed 0 --size small

data: $(PHANTOM_DONE)

# Each stage's command; `make <stage>` always runs it, a later stage runs it only when its output is missing.
ADAPT = $(BIN)/anaus-pl fit --config stages/adapt.yaml --run $(RUN)
ANNOTATE = $(BIN)/anaus-pl annotate --config stages/annotate.yaml --run $(RUN)
PRETRAIN = $(BIN)/anaus-pl fit --config stages/pretrain.yaml --run $(RUN)
EVALUATE = $(BIN)/anaus-pl evaluate --config stages/evaluate.yaml --run $(RUN)

adapt: $(STAMP) $(PHANTOM_DONE)
	$(ADAPT)

$(ADAPT_CKPT): | $(STAMP) $(PHANTOM_DONE)
	$(ADAPT)

annotate: $(STAMP) $(PHANTOM_DONE) | $(ADAPT_CKPT)
	$(ANNOTATE)

$(STORE): | $(STAMP) $(PHANTOM_DONE) $(ADAPT_CKPT)
	$(ANNOTATE)

pretrain: $(STAMP) | $(STORE)
	$(PRETRAIN)

$(ENCODER): | $(STAMP) $(STORE)
	$(PRETRAIN)

evaluate: $(STAMP) $(PHANTOM_DONE) | $(ENCODER)
	$(EVALUATE)

# ruff (pyproject.toml): lint rules and the formatter at line length 120; CI runs `make lint` first.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

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
