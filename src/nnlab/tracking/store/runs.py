"""A run's life in the store: opened, and closed as FINISHED, FAILED (with the error) or KILLED
(Ctrl-C / SIGTERM), never left RUNNING by anything that Python can catch.

MLflow only (no torch, no Lightning). A run is opened only after the config has passed its
checks; nnlab.tracking.store.client says where the store is.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from nnlab.tracking.store.client import experiment_id, remember_artifact_folder, set_tags
from nnlab.tracking.store.interrupts import RunInterrupted, interrupts_recorded
from nnlab.tracking.store.names import ERROR_TAG, HOST_TAG, PID_TAG
from nnlab.tracking.store.redact import redact


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (for runs left RUNNING by a dead process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


class RunStopped(Exception):
    """A run stopped on purpose before its end, e.g. a trial pruned by the search: it closes
    KILLED (MLflow has no other status for it) with its reason and `tags` saying what."""

    def __init__(self, reason: str, tags: Mapping[str, str]):
        super().__init__(reason)
        self.tags = dict(tags)


@contextlib.contextmanager
def open_run(
    client: MlflowClient,
    experiment: str,
    uri: str,
    run_name: str,
    tags: Mapping[str, Any],
    resume_run_id: str | None = None,
    closing_tags: Callable[[str | None], Mapping[str, str]] | None = None,
) -> Iterator[str]:
    """Create a run (or reopen `resume_run_id`) and yield its id; close it FINISHED, FAILED or
    KILLED whatever happens. `closing_tags(error or None)` gives tags written as it closes
    (its description with the result, or with the error)."""
    base_tags = {
        PID_TAG: os.getpid(),
        HOST_TAG: socket.gethostname(),
    }
    all_tags = {k: redact(str(v)) for k, v in {**base_tags, **tags}.items() if v is not None}
    if resume_run_id is not None:
        client.update_run(resume_run_id, status="RUNNING")
        set_tags(client, resume_run_id, all_tags)
        run_id = resume_run_id
    else:
        exp_id = experiment_id(client, experiment, uri)
        created = client.create_run(exp_id, run_name=redact(run_name), tags=all_tags).info
        remember_artifact_folder(client, created.run_id, created.artifact_uri)
        run_id = created.run_id
    with interrupts_recorded() as received:
        try:
            yield run_id
        except BaseException as exc:
            _close_after(client, run_id, exc, received, closing_tags)
            if received and not isinstance(exc, (KeyboardInterrupt, RunStopped)):
                raise RunInterrupted(f"signal {received['signal']}") from exc
            raise
        else:
            _close(client, run_id, RunStatus.FINISHED, None, closing_tags)


def _close_after(client, run_id: str, exc: BaseException, received: dict, closing_tags) -> None:
    """Close a run that `exc` ended: KILLED when interrupted, stopped on purpose or told to
    exit, FAILED with the error otherwise."""
    if isinstance(exc, SystemExit) and not received:
        # Told to exit mid-run: a scheduler's preemption (submitit requeues a job by exiting
        # its process) rather than a failure of the run itself.
        _close(client, run_id, RunStatus.KILLED, f"exited (code {exc.code})", closing_tags)
    elif isinstance(exc, RunStopped):
        set_tags(client, run_id, exc.tags)
        _close(client, run_id, RunStatus.KILLED, str(exc), closing_tags)
    elif received or isinstance(exc, KeyboardInterrupt):
        why = received.get("signal", "Ctrl-C")
        _close(client, run_id, RunStatus.KILLED, f"interrupted by {why}", closing_tags)
    else:
        _close(client, run_id, RunStatus.FAILED, f"{type(exc).__name__}: {exc}", closing_tags)


class OpenRuns:
    """The runs of `open_runs`, by index; `close(k, ...)` ends one of them early."""

    def __init__(self, client: MlflowClient, closing_tags: list):
        self.client = client
        self.ids: list[str] = []
        self.experiment_id: str | None = None  # the experiment they were opened in
        self.closing_tags = closing_tags
        self.still_open: list[int] = []

    def close(self, k: int, status: str, error: str | None = None, tags=None) -> None:
        """Close run k now; `tags`: more tags to write as it closes, in the same write."""
        self.still_open.remove(k)
        closing = self.closing_tags[k]
        if tags:
            closing = _with(closing, tags)
        _close(self.client, self.ids[k], RunStatus.from_string(status), error, closing)


def _with(closing_tags, tags: Mapping[str, Any]):
    """`closing_tags` (a function of the error, or None) with `tags` added."""
    return lambda error: {**(closing_tags(error) if closing_tags else {}), **tags}


@contextlib.contextmanager
def open_runs(
    client: MlflowClient,
    experiment: str,
    uri: str,
    run_names: list[str],
    tags: list[Mapping[str, Any]],
    closing_tags: list[Callable[[str | None], Mapping[str, str]] | None],
    resume_run_ids: list[str] | None = None,
) -> Iterator[OpenRuns]:
    """`open_run` for several runs trained together (a population, nnlab.training.population): each
    can
    be closed on its own (`OpenRuns.close`); whatever is still open when the block ends closes
    as `open_run` would close it. `resume_run_ids`: reopen these runs instead (resume=)."""
    runs = OpenRuns(client, closing_tags)
    exp_id = experiment_id(client, experiment, uri)
    if resume_run_ids is None:  # resumed runs stay wherever they were made
        runs.experiment_id = exp_id
    base_tags = {PID_TAG: os.getpid(), HOST_TAG: socket.gethostname()}
    with interrupts_recorded() as received:
        try:
            for k, (name, own) in enumerate(zip(run_names, tags, strict=True)):
                all_tags = {
                    key: redact(str(v)) for key, v in {**base_tags, **own}.items() if v is not None
                }
                if resume_run_ids is not None:
                    run_id = resume_run_ids[k]
                    client.update_run(run_id, status="RUNNING")
                    set_tags(client, run_id, all_tags)
                else:
                    created = client.create_run(exp_id, run_name=redact(name), tags=all_tags).info
                    remember_artifact_folder(client, created.run_id, created.artifact_uri)
                    run_id = created.run_id
                runs.ids.append(run_id)
                runs.still_open.append(k)
            yield runs
        except BaseException as exc:
            for k in list(runs.still_open):
                _close_after(client, runs.ids[k], exc, received, closing_tags[k])
            if received and not isinstance(exc, (KeyboardInterrupt, RunStopped)):
                raise RunInterrupted(f"signal {received['signal']}") from exc
            raise
        else:
            for k in list(runs.still_open):
                runs.close(k, "FINISHED")


def close_run(
    client: MlflowClient, run_id: str, status: str, error: str | None = None, tags=None
) -> None:
    """End a run as FINISHED, FAILED or KILLED; `error` (why) becomes its nnlab.error tag.
    Every place that closes a run (a run, a sweep, its stray children, --mark-killed) uses it."""
    final = dict(tags or {})
    if error:
        final[ERROR_TAG] = error[:5000]
    if final:
        set_tags(client, run_id, final)
    client.set_terminated(run_id, status, end_time=int(time.time() * 1000))


def _close(
    client: MlflowClient, run_id: str, status: int, error: str | None, closing_tags=None
) -> None:
    try:
        tags = closing_tags(error) if closing_tags is not None else None
        close_run(client, run_id, RunStatus.to_string(status), error, tags)
    except Exception as err:
        if error is None:
            raise  # a run that trained fine but cannot be closed is a store failure to report
        # The store itself may be what failed: report the original error, not this one.
        print(
            f"nnlab: could not mark run {run_id} {RunStatus.to_string(status)} in the store "
            f"({type(err).__name__})",
            file=sys.stderr,
        )
