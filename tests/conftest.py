"""Shared fixtures. Tests never touch the user's mlruns/: every test that tracks gets a copy of
one sqlite store migrated once per session (migrating costs ~1.4 s a store)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hypothesis import Phase, settings
from omegaconf import DictConfig

from nnlab.paths import CONF_DIR
from tests.cli import BIN, run_cli, spawn_cli  # noqa: F401 (re-exported for the tests)


# Property tests: "ci" (the default, what `make test` runs) draws the same examples every time;
# "fuzz" (`make fuzz`, NNLAB_HYPOTHESIS_PROFILE=fuzz) searches at random, much longer.
settings.register_profile(
    "ci", max_examples=60, derandomize=True, deadline=None, phases=list(Phase)[:-1]
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("NNLAB_FUZZ_EXAMPLES", "2000")),
    derandomize=False,
    deadline=None,
    phases=list(Phase)[:-1],  # no "explain": it re-runs a failure dozens of times
)
settings.load_profile(os.environ.get("NNLAB_HYPOTHESIS_PROFILE", "ci"))

# `slow` means exactly "starts a subprocess, server or browser": `pytest -m "not slow"` is the
# inner loop and must start none. A test that spawns without the mark fails, naming the command.
_spawning_allowed = True
SPAWN_EVENTS = {"subprocess.Popen", "os.system", "os.posix_spawn", "os.fork", "os.forkpty"}


def _refuse_spawns_in_fast_tests(event: str, args: tuple) -> None:
    if event in SPAWN_EVENTS and not _spawning_allowed:

        raise RuntimeError(f"a test not marked slow started a process ({event}: {args!r:.200})")


sys.addaudithook(_refuse_spawns_in_fast_tests)


@pytest.fixture(autouse=True)
def _spawns_only_in_slow_tests(request):
    global _spawning_allowed
    _spawning_allowed = request.node.get_closest_marker("slow") is not None
    yield
    _spawning_allowed = True

# Tiny runs: the tests check behaviour, not how well a net trains in 100 epochs.
# No MLflow Model export (~0.8 s a run) unless a test is about it (test_logged_model.py).
SHRINK = [
    "trainer.max_epochs=3",
    "data.n_samples=200",
    "trainer.progress=none",
    "tracking.log_model=false",
]


def compose_config(*overrides: str, shrink: bool = True) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[*(SHRINK if shrink else []), *overrides])


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory) -> Path:
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()  # creates and migrates the schema
    return db


@pytest.fixture
def store(migrated_store, tmp_path, monkeypatch) -> str:
    """A fresh, already-migrated sqlite store for this test; its URI is also the env default."""
    folder = tmp_path / "mlruns"
    folder.mkdir()
    shutil.copy(migrated_store, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NNLAB_HYDRA_DIR", str(tmp_path / "hydra"))
    return uri


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1 (for servers a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_params(names: list[str]) -> list:
    """Backends as test parameters. Outside CI, one whose extra is not installed is skipped,
    with what to install as the reason; in CI (`.ci/run` sets NNLAB_CI=1) it runs and fails."""
    from nnlab import backends

    params = []
    for name in names:
        missing = backends.get(name).missing_extra()
        skip = missing is not None and not os.environ.get("NNLAB_CI")
        params.append(pytest.param(name, marks=pytest.mark.skipif(skip, reason=str(missing))))
    return params
