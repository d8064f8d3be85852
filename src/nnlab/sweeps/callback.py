"""A Hydra multirun as one MLflow unit: a parent run that holds every job as its child.

Hydra calls `MlflowSweepCallback.on_multirun_start` in the launching process before the
first job: it opens the parent run and publishes its id in the environment, which every job
inherits (also the joblib launcher's worker processes, started afterwards); the protocol
itself is in nnlab.tracking.store.sweep_protocol. `on_multirun_end` writes the summary table and
figures to the parent (nnlab.report.sweep_summary), names the best job, and closes the parent.

A multirun that is interrupted (Ctrl-C, SIGTERM) never reaches `on_multirun_end`; nnlab's
entry point then calls `abort_active_sweep`, so the parent ends KILLED, not RUNNING.
Import-light on purpose: Hydra instantiates this callback before the config is checked.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from nnlab.config.choices import MAX_RUN_NAME
from nnlab.tracking.store import sweep_protocol
from nnlab.tracking.store.names import (
    DESCRIPTION_TAG,
    HOST_TAG,
    LAUNCHER_TAG,
    OBJECTIVE_TAG,
    PID_TAG,
    SOURCE_NAME_TAG,
    SOURCE_TYPE_TAG,
    SWEEP_TAG,
    SWEEPER_TAG,
)
from nnlab.tracking.store.redact import redact

# (client, run_id) of the sweep this process opened, until it is closed.
_active: tuple[Any, str] | None = None
_previous_sigterm: Any = None


class SweepInterrupted(KeyboardInterrupt):
    """SIGTERM during a sweep, handled like Ctrl-C: the running job and the parent end KILLED."""


def _on_sigterm(signum, frame):
    raise SweepInterrupted("SIGTERM")


def sweep_description(config: DictConfig) -> dict[str, str]:
    """What was swept: the command line's overrides and the sweeper's own params."""
    swept = {}
    for item in config.hydra.overrides.task:
        key, _, value = str(item).partition("=")
        swept[key.lstrip("+~")] = value
    params = OmegaConf.select(config, "hydra.sweeper.params")
    if params:
        swept.update({str(k): str(v) for k, v in params.items()})
    return swept


class MlflowSweepCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _active, _previous_sigterm
        # lazy: Hydra imports callbacks at start-up; MLflow loads at a multirun
        from nnlab.console import quiet_startup
        from nnlab.sweeps.sweep_check import sweep_problems

        quiet_startup()
        # lazy: Hydra imports callbacks at start-up; MLflow loads at a multirun
        from nnlab.tracking.describe import sweep_name, swept_keys
        from nnlab.tracking.store.client import experiment_id, get_client, log_params, tracking_uri
        from nnlab.tracking.store.preflight import check_store

        problem = launcher_problem(config)
        if problem is not None:  # before anything exists in the store
            raise SystemExit(f"nnlab-train: {problem}")
        problems = sweep_problems(config)  # every job's config, before the parent exists
        if problems:
            for line in problems:
                print(f"nnlab-train: {line}", file=sys.stderr)
            if len(problems) > 1:
                print(
                    f"nnlab-train: {len(problems)} jobs cannot run; nothing was started",
                    file=sys.stderr,
                )
            raise SystemExit(2)
        # lazy: Hydra imports callbacks at start-up; MLflow loads at a multirun
        from nnlab.tracking.store.preflight import StoreError

        uri = tracking_uri(config.tracking.uri)
        try:
            check_store(uri)  # a store that cannot be used: one line, exit 3, as a single run
        except StoreError as err:
            print(f"nnlab-train: tracking store {redact(uri)}: {err}", file=sys.stderr)
            raise SystemExit(3) from None
        earlier = earlier_parent(config)  # a resumed Optuna study continues its parent run
        try:
            client = get_client(uri)
            swept = sweep_description(config)
            keys = swept_keys(swept, OmegaConf.select(config, "hydra.sweeper.params"))
            name = sweep_name(keys, swept)
            if earlier is not None and reopen(client, earlier):
                _active = (client, earlier)
                sweep_protocol.publish(earlier, keys)
                _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
                print(f"nnlab: sweep parent run {earlier} continues (resumed search)", flush=True)
                return
            run = client.create_run(
                experiment_id(client, config.tracking.experiment, uri),
                run_name=redact(name)[:MAX_RUN_NAME],
                tags={
                    SWEEP_TAG: "true",
                    OBJECTIVE_TAG: str(config.objective),
                    SWEEPER_TAG: str(config.hydra.sweeper._target_),
                    LAUNCHER_TAG: str(config.hydra.launcher._target_),
                    PID_TAG: str(os.getpid()),
                    HOST_TAG: socket.gethostname(),
                    SOURCE_NAME_TAG: "nnlab-train -m",
                    SOURCE_TYPE_TAG: "LOCAL",
                    DESCRIPTION_TAG: "*Sweep running…* "
                    + " ".join(f"`{k}={v}`" for k, v in swept.items()),
                },
            )
        except Exception as err:  # Hydra would only warn and run the jobs unparented
            raise SystemExit(
                f"nnlab-train: cannot open the sweep's parent run in "
                f"{config.tracking.uri or 'the store'}: {err}"
            ) from err
        run_id = run.info.run_id
        log_params(client, run_id, {f"sweep.{k}": v for k, v in swept.items()})
        _active = (client, run_id)
        sweep_protocol.publish(run_id, keys)
        _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
        print(f"nnlab: sweep parent run {run_id} ({redact(name)[:80]})", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if _active is None:
            return
        client, run_id = _active
        # Lazy: the report's stack (matplotlib, MLflow's entities) is needed only now, and this
        # callback is instantiated before the config is checked.
        from nnlab.report.sweep_summary import summarise_sweep

        try:
            close_orphans(client, run_id)
            finished = summarise_sweep(client, run_id)
        except Exception as err:
            # Hydra turns a callback's exception into a warning and exits 0: exit non-zero
            # with one line instead (e.g. the tracking server went away during the sweep).
            from nnlab.tracking.store.preflight import store_failure

            reason = store_failure(err) or f"{type(err).__name__}: {err}"
            _close("FAILED", f"summary failed: {reason}")
            raise SystemExit(f"nnlab-train: the sweep's summary failed: {reason}") from err
        if finished == 0:
            _close("FAILED", "every job failed")
            raise SystemExit(1)
        _close("FINISHED", None)


def earlier_parent(config: DictConfig) -> str | None:
    """With nnlab's Optuna sweeper, the parent run of the study being resumed (None for a new
    study or another sweeper). A sweeper setting or study that cannot be used ends the
    multirun here, in one line, before anything is created."""
    target = str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))
    if not target.endswith("NnlabOptunaSweeper"):
        return None
    # lazy: Hydra imports callbacks at start-up; MLflow loads at a multirun
    from nnlab.sweeps.study import StudyError, parent_run_of, search_definition

    try:
        arguments = [str(o) for o in config.hydra.overrides.task]
        return parent_run_of(search_definition(config, arguments))
    except StudyError as err:
        raise SystemExit(f"nnlab-train: {err}") from None


def reopen(client, run_id: str) -> bool:
    """Set a finished sweep parent RUNNING again, for this process; False if it is gone."""
    # lazy: Hydra imports callbacks at start-up; MLflow loads at a multirun
    from nnlab.tracking.store.client import set_tags

    try:
        client.get_run(run_id)
    except Exception:  # deleted from the store: the search gets a new parent
        return False
    client.update_run(run_id, status="RUNNING")
    set_tags(client, run_id, {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()})
    return True


def launcher_problem(config: DictConfig) -> str | None:
    """Why the configured launcher cannot start, in one line (an unreachable Ray head)."""
    target = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
    if target.endswith("NnlabRayLauncher"):
        # lazy: Hydra imports callbacks at start-up; MLflow loads at a multirun
        from nnlab.sweeps.ray_jobs import check_head

        return check_head(OmegaConf.select(config, "hydra.launcher.ray.init.address"))
    return None


def close_orphans(client, run_id: str) -> None:
    """Every job has returned when the sweep ends: a child still RUNNING lost its process
    (a worker killed mid-job) before it could close its run. Close it FAILED, saying so."""
    # lazy: Hydra imports callbacks at start-up; MLflow loads at a multirun
    from nnlab.tracking.store.runs import close_run

    parent = client.get_run(run_id)
    for child in sweep_protocol.sweep_children(client, parent):
        if child.info.status == "RUNNING":
            close_run(
                client,
                child.info.run_id,
                "FAILED",
                "its process ended without closing the run (worker killed or lost)",
            )


def _close(status: str, error: str | None) -> None:
    global _active
    if _active is None:
        return
    client, run_id = _active
    _active = None
    sweep_protocol.withdraw()
    if _previous_sigterm is not None:
        signal.signal(signal.SIGTERM, _previous_sigterm)
    # lazy: Hydra imports callbacks at start-up; MLflow loads at a multirun
    from nnlab.tracking.store.runs import close_run

    try:
        if status == "KILLED":
            _kill_running_children(client, run_id)
        close_run(client, run_id, status, error)
    except Exception as err:  # the store may be what failed; say so rather than hide it
        print(f"nnlab: could not close sweep run {run_id}: {err}", file=sys.stderr)


def _kill_running_children(client, run_id: str) -> None:
    """Jobs in worker processes may be killed with their pool before they can close their own
    runs: close whatever of this sweep is still RUNNING."""
    # lazy: Hydra imports callbacks at start-up; MLflow loads at a multirun
    from nnlab.tracking.store.runs import close_run

    parent = client.get_run(run_id)
    for child in sweep_protocol.sweep_children(client, parent):
        if child.info.status == "RUNNING":
            close_run(client, child.info.run_id, "KILLED", "interrupted: the sweep was stopped")


def abort_active_sweep(status: str, reason: str) -> None:
    """Close the parent of a multirun that ended early (interrupt or fatal error)."""
    _close(status, reason)
