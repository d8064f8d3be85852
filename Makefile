# The README's two commands are `make run` and `make test`; both set up .venv first.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.nnlab-installed
PYTHON ?= python3

.PHONY: setup backends browser postgres debian-packages run test fuzz lint format ui server bench

EXTRAS := dev,sweeps,ui,ray,slurm,server
# Everything installed is byte-compiled once, for good: these machines set
# PYTHONDONTWRITEBYTECODE=1, so Python never caches what it compiles, and left uncompiled every
# process of `make test` compiled torch, Lightning and MLflow anew (pytest 1083 s instead of
# ~620). pip compiles on one core, file by file; compileall afterwards uses both (the full
# install: 130 s with pip compiling, 65 + 30 s this way). compileall exits 1 for the few files
# that are not valid Python 3.11 on purpose (torch's py312_intrinsics.py), as pip ignores them.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile \
	-c constraints.txt
COMPILE_ALL := $(BIN)/python -m compileall -q -j0 $(VENV)/lib >/dev/null || true
# nnlab's own modules too (an editable install is not compiled), before every run and test
# run (0.3 s): each process that imports them compiled ~110 modules anew, ~0.1 s, and the
# tests start ~100 commands. A module edited since is compiled in memory, as without them.
COMPILE_SRC := $(BIN)/python -m compileall -q -j0 src >/dev/null || true

setup: $(STAMP)

# Re-installs only when the project's requirements change, so a second `make setup` is instant.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[$(EXTRAS)]'
	$(COMPILE_ALL)
	touch $(STAMP)

# The jax and tensorflow backends' frameworks (~380 MB and ~1.4 GB): `make run` does not need
# them, `make test` tests both backends. One pip call for everything, not setup's and then
# these: a second resolve of the whole environment cost ~20 s.
BACKENDS_STAMP := $(VENV)/.nnlab-backends
backends: $(BACKENDS_STAMP)

$(BACKENDS_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[$(EXTRAS),jax,tensorflow]'
	$(COMPILE_ALL)
	touch $(STAMP) $(BACKENDS_STAMP)

run: setup
	@$(COMPILE_SRC)
	$(BIN)/nnlab-train

# The UI test drives Debian's chromium through Playwright (installed by setup, `ui` extra).
# The shared-server tests start a real PostgreSQL (Debian's `postgresql`; the server script
# runs it as the `postgres` user, since PostgreSQL refuses root) and make a self-signed
# certificate with `openssl`. Needs root for apt-get, as on the project's machines.
# apt_install: the Debian packages of $(1) not installed yet, in one apt-get call (two at once
# would fight over dpkg's lock); nothing once all are there.
apt_install = missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	[ -z "$$missing" ] || { echo "apt-get install" $$missing; apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }
browser:
	@$(call apt_install,chromium)
postgres:
	@$(call apt_install,postgresql openssl)
debian-packages:
	@$(call apt_install,chromium postgresql openssl)

# Every test, on the pytest-xdist workers that pyproject.toml's addopts name. The inner loop,
# without subprocesses, servers or browsers: .venv/bin/pytest -m "not slow".
# Python's packages and Debian's install side by side (pip unpacks while apt downloads).
test:
	$(MAKE) --no-print-directory -j2 backends debian-packages
	@$(COMPILE_SRC)
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
