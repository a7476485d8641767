# ParrotLM. `make help` lists the targets. ARGS passes Hydra overrides: make train ARGS="optim.lr=1e-3"
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install train plan download prepare evaluate generate chat export report mlflow-ui test test-fast test-e2e bench bench-gpu battery browser lint format tensorboard clean distclean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

# Reinstalled only when pyproject.toml changes (or the venv is missing).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 \
		| { grep -v "^WARNING: Location" || true; }
	@$(PY) -c "import torch, lightning, hydra, tiktoken, tokenizers" || { echo "install failed"; exit 1; }
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install ParrotLM with dev tools (idempotent)

train: $(STAMP) ## train the tiny default model on the embedded stories (offline, CPU-friendly)
	$(PY) train.py $(ARGS)

plan: $(STAMP) ## parameters, FLOPs, tokens, memory and a timed probe of a run: make plan ARGS="model=deep_narrow"
	$(PY) scripts/plan.py $(ARGS)

download: $(STAMP) ## fetch the optional lid.176.bin (and corpora: make download ARGS="lid data=tinystories")
	$(PY) scripts/download.py $(or $(ARGS),lid)

prepare: $(STAMP) ## prepare a corpus: make prepare ARGS="data=local data.source.path=corpus/"
	$(PY) scripts/prepare.py $(ARGS)

evaluate: $(STAMP) ## perplexity of a checkpoint: make evaluate ARGS="ckpt=outputs/runs/<run> eval_set=val"
	$(PY) scripts/evaluate.py $(ARGS)

generate: $(STAMP) ## sample text: make generate ARGS="ckpt=outputs/runs/<run> prompt='Once upon a time'"
	$(PY) scripts/generate.py $(ARGS)

chat: $(STAMP) ## chat with checkpoints in the browser + OpenAI-compatible API: make chat ARGS="port=8000"
	$(PY) scripts/chat.py $(ARGS)

export: $(STAMP) ## export a checkpoint: make export ARGS="ckpt=outputs/runs/<run> format=hf"
	$(PY) scripts/export.py $(ARGS)

report: $(STAMP) ## sweep table + val/loss plot: make report ARGS=outputs/multiruns/<date>/<time>
	$(PY) scripts/report.py $(ARGS)

# MLflow's web UI is in the full `mlflow` package, not in mlflow-skinny (the [mlflow] extra):
# installed here on first use. ARGS: a run dir (or sweep job dir); default the newest run under
# outputs/ that has an MLflow store (logger=mlflow writes <run dir>/mlflow/mlflow.db).
MLFLOW_PORT ?= 5000
mlflow-ui: $(STAMP) ## browse a run's MLflow store: make mlflow-ui ARGS=outputs/runs/<date>/<time> (default: newest)
	@$(PY) -c "import mlflow.server, flask" 2>/dev/null || $(PY) -m pip install --quiet 'mlflow>=3.0'
	@run="$(ARGS)"; \
	if [ -z "$$run" ]; then \
		db=$$(ls -t outputs/runs/*/*/mlflow/mlflow.db outputs/runs/*/mlflow/mlflow.db \
			outputs/multiruns/*/*/*/mlflow/mlflow.db 2>/dev/null | head -n 1); \
		run=$${db%/mlflow/mlflow.db}; \
	fi; \
	if [ -z "$$run" ] || [ ! -f "$$run/mlflow/mlflow.db" ]; then \
		echo "error: no MLflow store in $${run:-outputs/} (train with logger=mlflow, or give ARGS=<run dir>)."; exit 2; \
	fi; \
	echo "MLflow UI of $$run on http://127.0.0.1:$(MLFLOW_PORT)"; \
	$(PY) -m mlflow ui --backend-store-uri "sqlite:///$$(realpath $$run)/mlflow/mlflow.db" \
		--port $(MLFLOW_PORT)

# Tests come in layers (tests/unit, tests/integration, tests/e2e; markers of the same names).
# Files run in parallel, one worker per core, a file's fixtures in one worker; tests/conftest.py
# hands the longest files out first (--no-loadscope-reorder keeps that order), and expensive
# artifacts (prepared corpora, trained runs, resume references) are made once for all workers.
PYTEST_PARALLEL := -n auto --dist loadfile --no-loadscope-reorder
test: $(STAMP) ## run the whole test suite: unit, integration and e2e (what CI runs)
	$(PY) -m pytest $(PYTEST_PARALLEL) $(ARGS)

test-fast: $(STAMP) ## run the unit tests only (in-process, well under a minute)
	$(PY) -m pytest $(PYTEST_PARALLEL) tests/unit $(ARGS)

test-e2e: $(STAMP) ## run the end-to-end tests only (subprocess CLIs, signals, DDP, sweeps, browser)
	$(PY) -m pytest $(PYTEST_PARALLEL) tests/e2e $(ARGS)

bench: $(STAMP) ## measure training (ParrotLM vs a bare loop, MFU), tokenization, prepare memory, generation, evaluation; writes outputs/bench/
	$(PY) -m benchmarks $(ARGS)

bench-gpu: $(STAMP) ## on a CUDA GPU (<8 min): bf16 + torch.compile training, ParrotLM vs a bare loop, MFU; writes outputs/bench/bench-gpu.md
	$(PY) -m benchmarks.gpu $(ARGS)

battery: $(STAMP) ## try ~170 bad inputs and faults on every entry point; writes outputs/battery/ (make battery ARGS="--jobs 2")
	$(PY) -m tools.battery $(ARGS)

# Best effort: without apt-get or root the chat browser test is skipped (unless
# PARROT_REQUIRE_BROWSER=1, as in .ci/run, makes it fail).
browser: ## install Debian's chromium + chromedriver for the chat e2e test
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
		echo "chromium and chromedriver are installed"; \
	elif ! command -v apt-get >/dev/null; then \
		echo "note: no apt-get here; install chromium + chromedriver yourself for tests/e2e/test_chat_browser.py"; \
	else \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO="sudo -n"; \
		else echo "note: not root and no sudo; cannot install chromium + chromedriver"; exit 0; fi; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver >/dev/null \
			|| echo "note: installing chromium + chromium-driver failed; tests/e2e/test_chat_browser.py will skip"; \
	fi

lint: $(STAMP) ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

tensorboard: $(STAMP) ## serve TensorBoard over every run and sweep in outputs/
	$(VENV)/bin/tensorboard --logdir outputs

clean: ## remove runs, sweeps and caches (keeps prepared data and the venv)
	rm -rf outputs/runs outputs/multiruns .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

distclean: clean ## also remove prepared data and the venv
	rm -rf data $(VENV)
