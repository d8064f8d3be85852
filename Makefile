# The README's two commands are `make run` and `make test`; both set up .venv first.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.nnlab-installed
PYTHON ?= python3

.PHONY: setup backends browser postgres run test fuzz lint format ui server bench

EXTRAS := dev,sweeps,ui,ray,slurm,server

setup: $(STAMP)

# Re-installs only when the project's requirements change, so a second `make setup` is instant.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

# The jax and tensorflow backends' frameworks (~380 MB and ~1.4 GB): `make run` does not need
# them, `make test` tests both backends.
BACKENDS_STAMP := $(VENV)/.nnlab-backends
backends: $(BACKENDS_STAMP)

$(BACKENDS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c constraints.txt -e '.[$(EXTRAS),jax,tensorflow]'
	touch $(BACKENDS_STAMP)

run: setup
	$(BIN)/nnlab-train

# The UI test drives Debian's chromium through Playwright (installed by setup, `ui` extra).
# Needs root for apt-get, as on the project's machines; does nothing once chromium is there.
browser:
	command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The shared-server tests start a real PostgreSQL (Debian's `postgresql`; the server script
# runs it as the `postgres` user, since PostgreSQL refuses root) and make a self-signed
# certificate with `openssl`. Needs root for apt-get.
postgres:
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v openssl >/dev/null || \
		{ apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql openssl >/dev/null; }

# Every test, on the pytest-xdist workers that pyproject.toml's addopts name. The inner loop,
# without subprocesses, servers or browsers: .venv/bin/pytest -m "not slow".
test: setup backends browser postgres
	$(BIN)/pytest

# A longer, randomized search of the bad-input property (what `make test` runs derandomized):
# FUZZ_EXAMPLES cases, new ones each time; hypothesis prints how many it tried.
FUZZ_EXAMPLES ?= 2000
fuzz: setup
	NNLAB_HYPOTHESIS_PROFILE=fuzz NNLAB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest \
		tests/config/test_bad_input_property.py -k any_override --hypothesis-show-statistics -p no:cacheprovider

lint: setup
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks

format: setup
	$(BIN)/ruff format src tests scripts benchmarks
	$(BIN)/ruff check --fix src tests scripts benchmarks

ui: setup
	scripts/mlflow_ui.sh

# A shared tracking server: PostgreSQL + mlflow server --serve-artifacts, data in server-data/.
# HOST=0.0.0.0 serves other machines; workers then set MLFLOW_TRACKING_URI=http://<host>:5000.
HOST ?= 127.0.0.1
DATA ?= server-data
server: setup postgres
	$(BIN)/python scripts/tracking_server.py --data $(DATA) --host $(HOST) --port 5000

# Side-by-side timings (not tests): prints Markdown tables; BENCHMARKS.md holds the latest.
bench: setup
	$(BIN)/python benchmarks/suite.py
