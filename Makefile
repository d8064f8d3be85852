# The README's two commands are `make run` and `make test`; both set up .venv first.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.nnlab-installed
PYTHON ?= python3

.PHONY: setup run test lint format ui bench

setup: $(STAMP)

# Re-installs only when the project's requirements change, so a second `make setup` is instant.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c constraints.txt -e '.[dev,sweeps]'
	touch $(STAMP)

run: setup
	$(BIN)/nnlab-train

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks

format: setup
	$(BIN)/ruff format src tests scripts benchmarks
	$(BIN)/ruff check --fix src tests scripts benchmarks

ui: setup
	scripts/mlflow_ui.sh

# Side-by-side timings (not tests): prints Markdown tables; BENCHMARKS.md holds the latest.
bench: setup
	$(BIN)/python benchmarks/suite.py
