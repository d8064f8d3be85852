"""The MLflow store: where it is, how a run is named, opened, described and closed.

MLflow only (no torch, no Lightning), so reports can use it without the training stack.
A run is opened only after the config has passed its checks, and `open_run` guarantees that
it is closed as FINISHED, FAILED (with the error) or KILLED (Ctrl-C / SIGTERM): never left
RUNNING by anything that Python can catch.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

# nnlab's artifact downloads (sweep figures, stored configs) are small and many: a progress
# bar for each would bury the output. Set before mlflow reads it; the user's choice wins.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# MLflow retries an unreachable server 7 times with growing back-off (minutes): a run whose
# server went away should fail in seconds instead. Users can still set their own values.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
# With a tracking server MLflow prints "View run ... at" for every run it closes; nnlab prints
# its own address once per run (one that lands on the runs table).
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from mlflow.entities import Param, RunStatus, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from nnlab.paths import PROJECT_ROOT  # noqa: E402
from nnlab.tracking.store.chart_view import ensure_chart_view  # noqa: E402
from nnlab.tracking.store.names import (  # noqa: E402
    ERROR_TAG,
    GIT_COMMIT_TAG,
    HOST_TAG,
    PID_TAG,
    SOURCE_NAME_TAG,
    SOURCE_TYPE_TAG,
)
from nnlab.tracking.store.redact import redact  # noqa: E402

MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit for params
MAX_PARAM_LENGTH = 6000


def default_store_dir() -> Path:
    """`mlruns/` at the project root for a source checkout, else in the current directory."""
    root = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return root / "mlruns"


def tracking_uri(configured: str | None = None) -> str:
    """The config key wins, then $MLFLOW_TRACKING_URI, then the sqlite store in mlruns/."""
    if configured:
        return str(configured)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{default_store_dir() / 'mlflow.db'}"


def local_store_dir(uri: str) -> Path | None:
    """The folder holding a sqlite store (its artifacts go beside it); None for a server."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).parent
    return None


class SignalSafeClient(MlflowClient):
    """An MlflowClient whose calls are never cut in the middle by SIGINT / SIGTERM: a signal
    that arrives during a call is raised as it returns (`interrupts_held`). Raised inside
    SQLAlchemy's commit or a half-read cursor, it left a sqlite lock held by a pooled
    connection, and closing the runs KILLED then waited on that lock forever."""

    def __getattribute__(self, name: str):
        attr = super().__getattribute__(name)
        if name.startswith("_") or not callable(attr):
            return attr

        @functools.wraps(attr)
        def held(*args, **kwargs):
            with interrupts_held():
                return attr(*args, **kwargs)

        return held


def get_client(uri: str) -> MlflowClient:
    store = local_store_dir(uri)
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
    return SignalSafeClient(tracking_uri=uri)


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The id of experiment `name`, created on first use. In a local store its artifacts live
    in mlruns/artifacts/<name>/, wherever the process was started from."""
    found = client.get_experiment_by_name(name)
    if found is None:
        store = local_store_dir(uri)
        location = (store / "artifacts" / name).as_uri() if store else None
        try:
            client.create_experiment(name, artifact_location=location)
        except Exception:
            # Another process may have created it between our lookup and our create.
            if client.get_experiment_by_name(name) is None:
                raise
        found = client.get_experiment_by_name(name)
    ensure_chart_view(client, found)
    return found.experiment_id


@functools.cache  # read once per process, not once per run (a population opens N)
def git_commit() -> str | None:
    """The checkout's HEAD commit, read from .git's files: no `git` process per run, and none
    needed on a machine without git. None outside a git checkout."""
    git = PROJECT_ROOT / ".git"
    try:
        if git.is_file():  # a worktree or submodule: ".git" names the real folder
            git = (PROJECT_ROOT / git.read_text().removeprefix("gitdir:").strip()).resolve()
        common = git / "commondir"  # a worktree keeps its refs in the main repository
        refs_home = (git / common.read_text().strip()).resolve() if common.exists() else git
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None  # a detached HEAD is the commit itself
        ref = head.removeprefix("ref:").strip()
        for home in (git, refs_home):
            if (home / ref).is_file():
                return (home / ref).read_text().strip() or None
        for line in (refs_home / "packed-refs").read_text().splitlines():
            if line.endswith(f" {ref}"):
                return line.split()[0]
    except OSError:
        pass
    return None


def code_source_tags() -> dict[str, str | None]:
    """Where a training run's code came from: the UI's Source column (the entry point; its type
    must be one MLflow knows) and the commit. The run and its dataset inputs name the same."""
    return {SOURCE_NAME_TAG: "nnlab-train", SOURCE_TYPE_TAG: "LOCAL", GIT_COMMIT_TAG: git_commit()}


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    items = [Param(k, redact(str(v))[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
    for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[start : start + MAX_PARAMS_PER_BATCH])


def set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, Any]) -> None:
    client.log_batch(
        run_id, tags=[RunTag(k, redact(str(v))) for k, v in tags.items() if v is not None]
    )


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


class RunInterrupted(KeyboardInterrupt):
    """Raised on SIGINT / SIGTERM so that the run closes as KILLED."""


_held = {"depth": 0, "pending": None}  # store calls in progress on the main thread; a signal


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Let the block finish before an interrupt that arrives during it is raised (see
    SignalSafeClient). Only the main thread receives signals, so only it counts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _held["depth"] += 1
    try:
        yield
    finally:
        _held["depth"] -= 1
        pending = _held["pending"]
        if _held["depth"] == 0 and pending is not None:
            _held["pending"] = None
            raise RunInterrupted(f"signal {pending}")


@contextlib.contextmanager
def interrupts_recorded() -> Iterator[dict[str, str]]:
    """Turn SIGINT and SIGTERM into RunInterrupted, and remember which signal came.

    The memory matters because Lightning catches KeyboardInterrupt itself and turns it into
    `sys.exit(1)`: without it an interrupted run would look like a failed one.
    """
    received: dict[str, str] = {}
    if threading.current_thread() is not threading.main_thread():
        yield received  # signals reach only the main thread; nothing to install here
        return

    def handler(signum, frame):
        received["signal"] = signal.Signals(signum).name
        if _held["depth"]:  # mid store call: raised when it returns
            _held["pending"] = received["signal"]
            return
        raise RunInterrupted(f"signal {received['signal']}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


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
        run_id = client.create_run(exp_id, run_name=redact(run_name), tags=all_tags).info.run_id
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
        self.closing_tags = closing_tags
        self.still_open: list[int] = []

    def close(self, k: int, status: str, error: str | None = None) -> None:
        self.still_open.remove(k)
        _close(self.client, self.ids[k], RunStatus.from_string(status), error, self.closing_tags[k])


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
                    run_id = client.create_run(exp_id, run_name=redact(name), tags=all_tags)
                    run_id = run_id.info.run_id
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
