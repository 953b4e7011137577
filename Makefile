# liftpose: `make train` then `make test` on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# BlazePose for liftpose-infer: the one release whose wheel ships the offline pose models and
# still runs on numpy 1 (see pyproject.toml, extra "mediapipe", for why --no-deps)
MEDIAPIPE_SPEC ?= mediapipe==0.10.21
BIN := $(VENV)/bin
STAMP := $(VENV)/.liftpose-installed
MP_STAMP := $(VENV)/.liftpose-mediapipe
ARGS ?=
PYTEST_ARGS ?=
TABLES ?= *
SCALE ?= smoke

.PHONY: install install-mediapipe install-loggers train test lint format bench demo reproduce-tables ready-lifter clean help

help:
	@echo "make train   - install (into $(VENV)) and run the main job on the embedded data"
	@echo "make test    - install and run the test suite"
	@echo "make bench   - data and model throughput figures on this machine"
	@echo "make demo    - liftpose-infer on real photos and on a rendered clip -> demo/"
	@echo "make reproduce-tables SCALE=smoke|cpu|full TABLES='<paper>/<table glob>'"
	@echo "             - run the paper-table specs in experiments/ and render results/"
	@echo "make ready-lifter - retrain the lifter shipped in src/liftpose/system/assets (~15 min CPU)"
	@echo "make lint    - ruff"
	@echo "make clean   - remove run outputs and caches"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "liftpose needs Python >= 3.10 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "could not create $(VENV): install the venv module (Debian: python3-venv)"; exit 1; }

$(STAMP): pyproject.toml | $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install $(TORCH_SPEC)
	$(BIN)/pip install -e ".[dev,mediapipe]"
	@touch $(STAMP)

$(MP_STAMP): $(STAMP)
	$(BIN)/pip install --no-deps "$(MEDIAPIPE_SPEC)"
	@touch $(MP_STAMP)

install-mediapipe: $(MP_STAMP)

install: $(STAMP) $(MP_STAMP)

install-loggers: install
	$(BIN)/pip install -e ".[loggers]"

train: install
	$(BIN)/liftpose-train $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests

format: install
	$(BIN)/ruff check --fix src tests

bench: install
	$(BIN)/python -m liftpose.bench $(ARGS)

# liftpose-infer on the real photos of ../shared/data/coco_mini (when present) and on a clip of
# the held-out actor rendered by liftpose.data.render; pictures and poses land in demo/
demo: install
	$(BIN)/python -m liftpose.system.demo --out demo $(ARGS)

# Extra Hydra overrides for every job go in ARGS, e.g. ARGS='-- data.root=/data/h36m'
reproduce-tables: install
	$(BIN)/liftpose-tables --scale $(SCALE) --tables '$(TABLES)' $(ARGS)

# The ready lifter shipped with the package: train, test on held-out data, pack (ARGS: extra
# training overrides after --, with an --out of their own, e.g. ARGS='--out /tmp/rl -- trainer.max_epochs=1')
ready-lifter: install
	$(BIN)/python -m liftpose.ready_lifter $(ARGS)

clean:
	rm -rf logs outputs multirun .cache data/hdm05 demo .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
