# heatlit: `make train` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install train test test-all bench lint sweep study results check-readme clean

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

study: $(STAMP)  ## CPU study of the encoding effect (seeds x quant/unquant, 2 jobs at once), then its 95% CIs
	$(PY) -m heatlit.sweep study_cpu $(ARGS)
	$(PY) -m heatlit.report.effects $$(ls -d multirun/study_cpu/*/ | tail -n 1)

results: $(STAMP)  ## rerun the default experiment, study_cpu and representations_cpu (about 1 h on 2 cores); rewrite README's, STUDY's and REPRESENTATIONS' tables
	d=outputs/results/$$(date +%Y-%m-%d_%H-%M-%S) && \
	$(PY) -m heatlit.train output_dir=$$d/default && \
	$(PY) -m heatlit.sweep study_cpu hydra.sweep.dir=$$d/study && \
	$(PY) -m heatlit.sweep representations_cpu hydra.sweep.dir=$$d/representations && \
	$(PY) -m heatlit.report.readme update --default $$d/default --decoders $$d/default && \
	$(PY) -m heatlit.report.readme --readme docs/STUDY.md update --study $$d/study && \
	$(PY) -m heatlit.report.readme --readme docs/REPRESENTATIONS.md update --representations $$d/representations

check-readme: $(STAMP)  ## train the default experiment into a fresh folder and compare README's table with it
	d=outputs/check-readme/$$(date +%Y-%m-%d_%H-%M-%S) && \
	$(PY) -m heatlit.train output_dir=$$d && $(PY) -m heatlit.report.readme check $$d

clean:  ## remove caches and run outputs (keeps .venv)
	rm -rf outputs multirun wandb lightning_logs .pytest_cache .ruff_cache
