"""Shared fixtures. Tests never touch the user's mlruns/: every test that tracks gets a copy of
one sqlite store migrated once per session (migrating costs ~1.4 s a store)."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import sys
import zlib
from pathlib import Path

# The pytest workers outnumber the cores: one compute thread each, or torch, XLA and TensorFlow
# each start a pool per worker and the workers spend their time preempting one another. Set
# before any framework is imported (they read these once, at start).
if "PYTEST_XDIST_WORKER" in os.environ:
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ.setdefault(variable, "1")
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )

import matplotlib.font_manager
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hypothesis import Phase, settings
from mlflow.tracking.context import registry as mlflow_context_registry
from omegaconf import DictConfig

from nnlab.paths import CONF_DIR
from tests.commands import BIN

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

# `slow` means "starts a subprocess, server or browser" (or runs a whole multirun, which on Hydra's
# basic launcher stays in this process but takes seconds): `pytest -m "not slow"` is the
# inner loop and must start none. A test that spawns without the mark fails, naming the command
# (also where a library caught the refusal and went on: the attempt is remembered).
_spawning_allowed = True
_refused_spawns: list[str] = []
SPAWN_EVENTS = {"subprocess.Popen", "os.system", "os.posix_spawn", "os.fork", "os.forkpty"}


def _refuse_spawns_in_fast_tests(event: str, args: tuple) -> None:
    if event in SPAWN_EVENTS and not _spawning_allowed:
        _refused_spawns.append(f"{event}: {args!r:.200}")
        raise RuntimeError(f"a test not marked slow started a process ({_refused_spawns[-1]})")


# Libraries that start a helper process once per process and keep the answer: platform's
# `uname -p` (TensorFlow asks at import), matplotlib's `fc-list` (the first font lookup on a
# machine with no font cache yet), MLflow's git context (`git version`, `git check-ignore`,
# cached for the process; asked when a model is logged). Asked here, before any test, they are
# not a test's spawn.
platform.processor()
matplotlib.font_manager.findfont("DejaVu Sans")
mlflow_context_registry.resolve_tags()
sys.addaudithook(_refuse_spawns_in_fast_tests)


@pytest.fixture(autouse=True)
def _spawns_only_in_slow_tests(request):
    global _spawning_allowed
    _spawning_allowed = request.node.get_closest_marker("slow") is not None
    _refused_spawns.clear()
    yield
    _spawning_allowed = True
    assert not _refused_spawns, f"not marked slow, yet started a process: {_refused_spawns}"


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


@pytest.fixture
def rng(request) -> np.random.Generator:
    """Random numbers seeded by the test's own name: the same draws whichever tests ran
    before it, in whatever order or worker (a module-level generator's are not)."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory) -> Path:
    """An empty migrated store to copy, made as nnlab makes every new store
    (nnlab.tracking.store.new_store): MLflow adds the Default experiment where it opens a copy."""
    from nnlab.tracking.store.new_store import create_store

    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    assert create_store(db), "the store template could not be made (see new_store)"
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


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head on 127.0.0.1 with 2 CPUs, in its own temp dir (socket paths must be short),
    started once for a module's Ray tests (each start costs ~10 s) and stopped after them: an
    idle head still takes ~4% of a core, which the rest of the session needs. It is started with a
    decoy MLFLOW_TRACKING_URI and without nnlab's variables: a job that logs to the right store
    got it through the launcher's runtime_env, not by inheriting the head's environment."""
    import subprocess
    import tempfile
    import time

    from nnlab.env import environ_snapshot
    from tests.servers import distinct_free_ports

    (port,) = distinct_free_ports(1)
    decoy = tmp_path_factory.mktemp("decoy") / "mlflow.db"
    temp = tempfile.mkdtemp(prefix="nnlab-ray-", dir="/tmp")
    env = {k: v for k, v in environ_snapshot().items() if not k.startswith("NNLAB_")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{decoy}"
    # Ray runs its workers at nice 15 (its `worker_niceness`): beside `make test`'s other
    # workers at nice 0 they got ~2% of a core, and the one Ray sweep took 172-177 s instead of
    # 21 s alone (37 s at nice 0 beside two busy cores). The head's raylet reads this variable.
    env["RAY_worker_niceness"] = "0"
    start = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=false",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
    ]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}", decoy
    finally:
        # Only this head's processes (`ray stop` would stop every Ray on the machine): each
        # names the head's temp dir on its command line. TERM, then KILL what is left.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in processes_naming(temp):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            for _ in range(50):
                if not processes_naming(temp):
                    break
                time.sleep(0.1)
        assert not processes_naming(temp), "Ray processes left running"
        shutil.rmtree(temp, ignore_errors=True)  # its logs and sockets


def processes_naming(text: str) -> list[int]:
    """Pids of the live processes whose command line contains `text` (pgrep -f, without a
    process per look)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
    return [pid for pid in found if pid != os.getpid()]


def assert_model_records_what_mlflow_would(client, run_id: str) -> None:
    """The run's logged model (nnlab.tracking.logged_model) holds what mlflow.models.Model.log
    gives a model logged for a run: READY, from this run and its experiment, the run's params,
    and the run's step-0 metrics linked to it, each exactly once in the run's own curves."""
    run = client.get_run(run_id)
    (output,) = run.outputs.model_outputs
    assert output.step == 0
    model = client.get_logged_model(output.model_id)
    assert (str(model.status), model.source_run_id) == ("READY", run_id)
    assert model.experiment_id == run.info.experiment_id
    assert model.params == run.data.params and model.params
    step_zero = sorted(
        (m.key, m.value, m.timestamp)
        for key in run.data.metrics
        for m in client.get_metric_history(run_id, key)
        if m.step == 0
    )
    assert len({(key, v) for key, v, _ in step_zero}) == len(step_zero)  # no point twice
    linked = sorted((m.key, m.value, m.timestamp) for m in model.metrics)
    assert linked == step_zero and {k for k, *_ in linked} >= {"model/parameters", "train/loss"}
    assert model.tags["mlflow.source.name"] == run.data.tags["mlflow.source.name"]


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


# -- the order tests start in: long modules spread over the workers --------------------------
# pytest-xdist's worksteal scheduler hands each of its N workers a contiguous 1/N of the
# collection, and an idle worker steals from the *end* of the longest queue. In alphabetical
# order the modules that start servers, Ray and browsers (sweeps/, tracking/) all fell into the
# last two chunks and ran one after another at the end: a 3-minute tail. Here each long module
# goes, whole (its module-scoped server starts once), to the start of the chunk with the least
# estimated time so far; the short tests fill the chunks to xdist's sizes. The estimates are
# seconds on this machine (`pytest --durations`); a wrong one costs time, never correctness.
# Only tests/tracking/test_tracking_server.py starts a Ray head: two heads at once on 2 cores
# once made a Ray test take 333 s instead of ~80 (the suite 646 s instead of ~500).
LONG_MODULES = {
    "tests/tracking/test_reliability.py": 210,
    "tests/tracking/test_tracking_server.py": 200,
    "tests/sweeps/test_sweeps.py": 125,
    "tests/tracking/test_server_auth.py": 125,
    "tests/training/test_population.py": 100,
    "tests/sweeps/test_optuna_sweeper.py": 90,
    "tests/config/test_bad_input_property.py": 70,
    "tests/sweeps/test_submitit.py": 65,
    "tests/nn/test_logged_model.py": 35,
    "tests/tracking/test_mlflow_ui.py": 35,
}


def pytest_collection_modifyitems(config, items) -> None:
    # In a worker, xdist says how many there are; the controller schedules the workers'
    # (identical) collection, so the order must be made there.
    workers = getattr(config, "workerinput", {}).get("workercount")
    if not isinstance(workers, int) or workers < 2 or len(items) < 10 * workers:
        return
    by_module: dict[str, list] = {}
    for item in items:
        by_module.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    bins: list[list] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for module, seconds in sorted(LONG_MODULES.items(), key=lambda kv: -kv[1]):
        if module in by_module:
            k = load.index(min(load))
            bins[k] += by_module.pop(module)
            load[k] += seconds
    short = [item for tests in by_module.values() for item in tests]
    # xdist's chunk sizes: len // workers, then what is left split the same way.
    sizes, left = [], len(items)
    for k in range(workers):
        sizes.append(left // (workers - k))
        left -= sizes[-1]
    ordered = []
    for k, heavy in enumerate(bins):
        room = max(0, sizes[k] - len(heavy))
        ordered += heavy + short[:room]
        short = short[room:]
    items[:] = ordered + short
