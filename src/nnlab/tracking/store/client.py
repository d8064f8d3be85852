"""How nnlab reaches the MLflow store: where it is, a client that a signal cannot tear, the
experiment, params and tags written in batches, and where a run's code came from.

MLflow only (no torch, no Lightning), so reports can use it without the training stack.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# MLflow reads these when it downloads or sends a request, so setting them on import of this
# module (which every path to a client goes through) is early enough; the user's value wins.
# nnlab's artifact downloads (sweep figures, stored configs) are small and many: a progress
# bar for each would bury the output.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# MLflow retries an unreachable server 7 times with growing back-off (minutes): a run whose
# server went away should fail in seconds instead.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
# With a tracking server MLflow prints "View run ... at" for every run it closes; nnlab prints
# its own address once per run (one that lands on the runs table).
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from nnlab.paths import PROJECT_ROOT  # noqa: E402
from nnlab.tracking.store import sqlite_wal  # noqa: E402, F401  (sqlite stores in WAL mode)
from nnlab.tracking.store.bulk_metrics import (  # noqa: E402
    database_store,
    insert_metrics,
    link_written_metrics,
)
from nnlab.tracking.store.chart_view import ensure_chart_view  # noqa: E402
from nnlab.tracking.store.interrupts import interrupts_held  # noqa: E402
from nnlab.tracking.store.names import (  # noqa: E402
    GIT_COMMIT_TAG,
    SOURCE_NAME_TAG,
    SOURCE_TYPE_TAG,
)
from nnlab.tracking.store.new_store import create_store  # noqa: E402
from nnlab.tracking.store.redact import redact  # noqa: E402

MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limits
MAX_METRICS_PER_BATCH = 1000
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


def local_store_file(uri: str) -> Path | None:
    """The sqlite store's file; None for a server."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    return None


def local_store_dir(uri: str) -> Path | None:
    """The folder holding a sqlite store (its artifacts go beside it); None for a server."""
    db = local_store_file(uri)
    return db.parent if db is not None else None


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
    db = local_store_file(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        # A plain file path (not ":memory:", no "?mode=..." query): a new one starts as a copy
        # of an empty migrated store (~1 s sooner than MLflow's migrations).
        if "?" not in uri and not db.name.startswith(":") and not db.exists():
            create_store(db)
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


def log_params(
    client: MlflowClient,
    run_id: str,
    params: Mapping[str, Any],
    tags: Mapping[str, Any] | None = None,
) -> None:
    """`params` (and `tags`, in the same write: a population opens many runs at once)."""
    items = [Param(k, redact(str(v))[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
    tagged = [RunTag(k, redact(str(v))) for k, v in (tags or {}).items() if v is not None]
    batches = [
        items[i : i + MAX_PARAMS_PER_BATCH] for i in range(0, len(items), MAX_PARAMS_PER_BATCH)
    ]
    if tagged and not batches:
        batches = [[]]
    for n, batch in enumerate(batches):
        client.log_batch(run_id, params=batch, tags=tagged if n == 0 else [])


def log_metrics(client: MlflowClient, run_id: str, metrics: list[Metric]) -> None:
    """`metrics` of run `run_id` in as few writes as the store allows (`log_runs_metrics`)."""
    log_runs_metrics(client, {run_id: metrics})


def log_runs_metrics(client: MlflowClient, by_run: Mapping[str, list[Metric]]) -> None:
    """The metrics of several runs (run id -> its metrics): one bulk INSERT for all on a
    database store (nnlab.tracking.store.bulk_metrics), and a run's metrics written already
    linked to its model without writing them again; batches of MLflow's `log_batch` per run
    otherwise."""
    by_run = {run_id: metrics for run_id, metrics in by_run.items() if metrics}
    store = database_store(client)
    linked = [m.model_id is not None for metrics in by_run.values() for m in metrics]
    if store is not None and by_run and not any(linked):
        with interrupts_held():  # as every call of a SignalSafeClient (above)
            if insert_metrics(store, by_run):
                return
    if store is not None and len(by_run) == 1 and all(linked):  # a run's metrics, to its model
        ((run_id, metrics),) = by_run.items()
        with interrupts_held():
            if link_written_metrics(store, run_id, metrics):
                return
    for run_id, metrics in by_run.items():
        for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH])


def remember_artifact_folder(client: MlflowClient, owner_id: str, location: str) -> None:
    """Tell `client` where run (or logged model) `owner_id` keeps its artifacts, `location`
    as the store gave it on creation. MLflow's client otherwise reads the whole run (model)
    back on its first artifact call to learn it: ~10 ms a run here, paid by every member of
    a population for its config and again for its model. What is remembered is the
    repository MLflow would make itself (`_get_artifact_repo` of the tracking service
    client); its cache is private (mlflow is pinned in constraints.txt, and
    tests/tracking/test_tracking.py holds the artifacts where MLflow puts them)."""
    # lazy: MLflow's artifact registry loads every artifact backend's module
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.tracking._tracking_service import utils as service_utils
    from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri

    cache = getattr(service_utils, "_artifact_repos_cache", None)
    if cache is None or owner_id in cache:
        return
    if len(cache) > 1024:  # as MLflow bounds it
        cache.popitem(last=False)
    uri = add_databricks_profile_info_to_artifact_uri(location, client.tracking_uri)
    cache[owner_id] = get_artifact_repository(uri, tracking_uri=client.tracking_uri)


def set_tags(
    client: MlflowClient, run_id: str, tags: Mapping[str, Any], metrics: list[Metric] = ()
) -> None:
    """`tags` (None values left out), and `metrics` in the same write when given."""
    client.log_batch(
        run_id,
        metrics=list(metrics),
        tags=[RunTag(k, redact(str(v))) for k, v in tags.items() if v is not None],
    )
