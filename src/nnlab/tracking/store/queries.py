"""Finding runs in the store: experiments by name, every page of a search, a run's metric
history. MLflow only, no torch."""

from __future__ import annotations

from collections.abc import Sequence

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from nnlab.tracking.store.bulk_metrics import database_store, metric_points
from nnlab.tracking.store.names import SWEEP_TAG

PAGE = 1000  # MLflow's search page size


def search_all(
    client: MlflowClient,
    experiment_ids: Sequence[str],
    filter_string: str = "",
    order_by: Sequence[str] = ("attributes.start_time DESC",),
    limit: int | None = None,
) -> list[Run]:
    """Every matching run, following MLflow's pages (it answers at most 1,000 at a time)."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            list(experiment_ids),
            filter_string,
            max_results=PAGE,
            order_by=list(order_by),
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token or (limit is not None and len(runs) >= limit):
            return runs[:limit] if limit is not None else runs


def experiment_ids(client: MlflowClient, names: Sequence[str] | None) -> list[str]:
    """The ids of the named experiments (all experiments when `names` is empty)."""
    if names:
        found = [client.get_experiment_by_name(n) for n in names]
        missing = [n for n, e in zip(names, found, strict=True) if e is None]
        if missing:
            known = ", ".join(sorted(e.name for e in client.search_experiments()))
            raise LookupError(f"no experiment named {', '.join(missing)} (known: {known})")
        return [e.experiment_id for e in found]
    return [e.experiment_id for e in client.search_experiments()]


def latest_sweep(client: MlflowClient, exp_ids: Sequence[str]) -> Run | None:
    found = client.search_runs(
        list(exp_ids),
        f"tags.`{SWEEP_TAG}` = 'true'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return found[0] if found else None


def metric_history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    """A metric's whole history as [(step, value)], in step order (then logging order): one
    SELECT on a database store (nnlab.tracking.store.bulk_metrics), else MLflow's query."""
    store = database_store(client)
    if store is not None:
        return metric_points(store, run_id, key)
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return [(m.step, m.value) for m in points]
