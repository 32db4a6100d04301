# heatlit: `make train` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install train test test-all bench lint sweep clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=python3)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install heatlit with dev tools

train: $(STAMP)  ## run the default experiment end to end (ARGS="model=hrnet ..." to override)
	$(PY) -m heatlit.train $(ARGS)

test: $(STAMP)  ## run the fast test suite
	$(PY) -m pytest -q

test-all: $(STAMP)  ## run every test, the slow ones too
	$(PY) -m pytest -q -m ''

bench: $(STAMP)  ## codec benchmarks: speed at 1 and 2 threads vs loop baselines, accuracy vs Cramer-Rao and at the border, multi-peak on crowded maps
	$(PY) -m heatlit.bench codecs

lint: $(STAMP)  ## ruff (lint and format) and the import-layer contract
	$(PY) -m ruff check heatlit tests
	$(PY) -m ruff format --check heatlit tests
	$(VENV)/bin/lint-imports --no-cache

sweep: $(STAMP)  ## CPU table2 sweep, then its report
	$(PY) -m heatlit.sweep table2_cpu $(ARGS)

clean:  ## remove caches and run outputs (keeps .venv)
	rm -rf outputs multirun wandb lightning_logs .pytest_cache .ruff_cache
