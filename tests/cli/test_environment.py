"""The process environment: read safely beside threads that change it, and MLflow's usage
telemetry off unless the user asks for it."""

import os
import subprocess
import sys
import threading

import pytest

from nnlab.env import environ_snapshot
from nnlab.tracking.store.redact import redact

# Variables that make MLflow switch telemetry off by itself (it treats them as CI or tests):
# removed from the child's environment so that only nnlab's default or the user's choice
# decides.
CI_MARKERS = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL")


def churn_environment(stop: threading.Event) -> None:
    """What MLflow's telemetry thread does: set and delete variables, over and over."""
    i = 0
    while not stop.is_set():
        name = f"NNLAB_TEST_CHURN_{i % 50}"
        os.environ[name] = "x" * (i % 7)
        os.environ.pop(f"NNLAB_TEST_CHURN_{(i + 25) % 50}", None)
        i += 1


@pytest.fixture
def churning_environment():
    stop = threading.Event()
    thread = threading.Thread(target=churn_environment, args=(stop,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()
    for name in [n for n in environ_snapshot() if n.startswith("NNLAB_TEST_CHURN_")]:
        os.environ.pop(name, None)


def test_redact_survives_a_thread_changing_the_environment(churning_environment, monkeypatch):
    # The reported race: KeyError from iterating os.environ in redact.secret_values().
    monkeypatch.setenv("NNLAB_TEST_API_TOKEN", "s3cret-value")
    for _ in range(3000):
        assert redact("token s3cret-value here") == "token *** here"


def test_redact_follows_the_environment_as_it_changes(monkeypatch):
    """The secrets are remembered with the environment they were found in: a secret set,
    changed or removed since the last redact is masked (or not) all the same."""
    assert redact("a s3cret-one b") == "a s3cret-one b"
    monkeypatch.setenv("NNLAB_TEST_PASSWORD", "s3cret-one")
    assert redact("a s3cret-one b") == "a *** b"
    monkeypatch.setenv("NNLAB_TEST_PASSWORD", "s3cret-two")
    assert redact("a s3cret-one s3cret-two b") == "a s3cret-one *** b"
    monkeypatch.delenv("NNLAB_TEST_PASSWORD")
    assert redact("a s3cret-two b") == "a s3cret-two b"


def test_environment_snapshot_is_a_consistent_copy(churning_environment, monkeypatch):
    monkeypatch.setenv("NNLAB_TEST_STEADY", "kept")
    for _ in range(3000):
        snap = environ_snapshot()
        assert snap["NNLAB_TEST_STEADY"] == "kept"
        assert all(isinstance(v, str) for v in snap.values())


def telemetry_state(**env: str) -> str:
    """In a fresh interpreter: nnlab is imported, then MLflow; is its telemetry client on?"""
    child_env = {k: v for k, v in environ_snapshot().items() if k not in CI_MARKERS}
    for name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
        child_env.pop(name, None)
    child_env.update(env)
    code = (
        "import os, nnlab.tracking.store.runs\n"
        "from mlflow.telemetry import get_telemetry_client\n"
        "print(get_telemetry_client() is None, os.environ.get('MLFLOW_DISABLE_TELEMETRY'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.slow  # a fresh interpreter: what importing does
def test_mlflow_telemetry_is_off_by_default():
    assert telemetry_state() == "True true"


@pytest.mark.slow  # a fresh interpreter: what importing does
def test_users_do_not_track_is_honoured_and_not_overwritten():
    # DO_NOT_TRACK=true set by the user: nnlab adds nothing, and MLflow stays off.
    assert telemetry_state(DO_NOT_TRACK="true") == "True None"


@pytest.mark.slow  # a fresh interpreter: what importing does
def test_users_own_telemetry_choice_is_left_alone():
    # Checked without importing MLflow with telemetry on (that would reach out to the net).
    code = "import os, nnlab; print(os.environ['MLFLOW_DISABLE_TELEMETRY'])"
    env = {**environ_snapshot(), "MLFLOW_DISABLE_TELEMETRY": "false"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "false"
