"""The process environment, read safely, and the MLflow defaults nnlab sets in it.

Two things live here because both are about `os.environ` and both must happen before MLflow
is imported or starts threads:

- `environ_snapshot()`: a copy of the environment that other threads cannot break. Iterating
  `os.environ` while another thread sets or deletes a variable raises KeyError or
  RuntimeError (MLflow's telemetry thread did exactly that to 2 runs in ~50). Code that runs
  beside other threads reads the environment through this function only.
- `apply_telemetry_default()`: MLflow 3.x sends usage telemetry from every process that
  imports it. nnlab turns it off unless the user has said otherwise (see the README).
"""

from __future__ import annotations

import os

TELEMETRY_SWITCHES = ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")
# What an MLflow server or UI process nnlab starts runs with, unless the environment says
# otherwise: no usage telemetry, and no job runner (MLflow 3's huey consumer and its worker
# processes, each importing MLflow, serve GenAI jobs, which nnlab never sends).
# scripts/mlflow_ui.sh, a shell script, sets the same two.
MLFLOW_SERVER_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


def environ_snapshot(attempts: int = 20) -> dict[str, str]:
    """A consistent copy of os.environ, taken even while other threads change it."""
    for _ in range(attempts):
        try:
            # dict(os.environ) walks a key list and then looks each key up: a key deleted in
            # between raises KeyError, a dict resized mid-walk raises RuntimeError. Retrying
            # takes a fresh walk; races are rare, so one or two attempts is the norm.
            return dict(os.environ)
        except (KeyError, RuntimeError):
            continue
    raise RuntimeError("the environment kept changing while it was read")


def apply_telemetry_default() -> None:
    """Disable MLflow's usage telemetry unless the user set either switch themselves.

    Why off: lab and cluster machines often have no route out (each process would try), some
    users do not want it, and its background thread edits os.environ while a run reads it.
    A user who wants it sets MLFLOW_DISABLE_TELEMETRY=false; DO_NOT_TRACK is honoured as set.
    """
    if not any(name in os.environ for name in TELEMETRY_SWITCHES):
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
