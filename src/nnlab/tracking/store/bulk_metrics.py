"""A run's metrics written to (and read back from) a database store in bulk, not through
MLflow's ORM.

MLflow's `log_batch` on a database store makes one ORM object per value and flushes them through
SQLAlchemy's unit of work: ~0.06-0.1 ms a value on this machine (more on a loaded one), and a
sweep's curves are tens of thousands of values (20 members x 500 epochs x 5 metrics = 50,000).
Here the same rows go in as one executemany of MLflow's own `metrics` table, in the same
transaction as MLflow's own update of the run's latest values (`latest_metrics`), with the same
checks first (the run exists and is active, each metric is valid): 0.22-0.27x of
`log_batch`'s cost a value (benchmarks/bulk_metrics.py). What the store then holds is what
`log_batch` would have written, row for row (tests/tracking/test_bulk_metrics.py).

Reading a curve back (a sweep's summary reads two per job, a report or a resume every one) is
one SELECT of the same rows, ordered as MLflow orders them, without an ORM object and a Metric
entity a point (`metric_points`): the 40 curves of a 20-job sweep's summary in 0.10 s, not
0.91 s.

Only for a store MLflow itself reaches through SQLAlchemy (sqlite, PostgreSQL, MySQL URIs); a
tracking server over HTTP takes `log_batch`. Anything unexpected (a duplicate row, another
MLflow whose store has no such methods) falls back to `log_batch`, which handles it as MLflow
does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


def database_store(client: MlflowClient):
    """The client's SqlAlchemyStore, or None (a server, a file store, another MLflow)."""
    # lazy: the SQL store's module loads SQLAlchemy's models; only database stores need it
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    needed = ("ManagedSessionMaker", "_get_run", "_check_run_is_active")
    if isinstance(store, SqlAlchemyStore) and all(hasattr(store, n) for n in needed):
        return store
    return None


def insert_metrics(store, by_run: Mapping[str, list[Metric]]) -> bool:
    """The metrics of each run in `by_run` (run id -> its metrics) written in one transaction:
    a population's members flush together. False (nothing written) where the store refused
    them in a way `log_batch` knows how to handle (a duplicate row)."""
    # lazy: as above
    import sqlalchemy
    from mlflow.store.tracking.dbmodels.models import SqlMetric
    from mlflow.utils.validation import _validate_metric

    rows, latest_of_runs = [], []
    for run_id, metrics in by_run.items():
        latest = {}
        for metric in metrics:
            _validate_metric(metric.key, metric.value, metric.timestamp, metric.step)
            is_nan, value = store.sanitize_metric_value(metric.value)
            row = {
                "run_uuid": run_id,
                "key": metric.key,
                "value": value,
                "timestamp": metric.timestamp,
                "step": metric.step,
                "is_nan": is_nan,
            }
            rows.append(row)
            order = (metric.step, metric.timestamp, value)  # MLflow's "more recent" order
            if metric.key not in latest or order > latest[metric.key][0]:
                latest[metric.key] = (order, row)
        latest_of_runs.append([SqlMetric(**row) for _, row in latest.values()])
    with store.ManagedSessionMaker(read_only=False) as session:
        for run_id in by_run:
            store._check_run_is_active(store._get_run(run_uuid=run_id, session=session))
        try:
            if rows:
                session.execute(sqlalchemy.insert(SqlMetric.__table__), rows)
            for latest in latest_of_runs:  # MLflow's update looks at one run at a time
                store._update_latest_metrics_if_necessary(latest, session)
            session.commit()
        except sqlalchemy.exc.IntegrityError:
            session.rollback()
            return False
    return True


def link_written_metrics(store, run_id: str, metrics: list[Metric]) -> bool:
    """Metrics run `run_id` holds already, linked to the logged model each names (`model_id`):
    what `log_batch` leaves, without its attempt to insert the rows again, which the primary
    key refuses, rolled back and looked up one by one (~15 ms a population member here). False
    (nothing written) when one is not among the run's rows yet: `log_batch` writes it."""
    # lazy: as above
    import sqlalchemy
    from mlflow.store.tracking.dbmodels.models import SqlMetric

    if not hasattr(store, "_log_model_metrics"):  # another MLflow: log_batch knows best
        return False
    table = SqlMetric.__table__
    wanted = set()
    for metric in metrics:
        is_nan, value = store.sanitize_metric_value(metric.value)
        wanted.add((metric.key, metric.timestamp, metric.step, value, is_nan))
    query = sqlalchemy.select(
        table.c.key, table.c.timestamp, table.c.step, table.c.value, table.c.is_nan
    ).where(
        table.c.run_uuid == run_id,
        table.c.key.in_({key for key, *_ in wanted}),
        table.c.step.in_({step for _, _, step, *_ in wanted}),
    )
    with store.ManagedSessionMaker() as session:
        run = store._get_run(run_uuid=run_id, session=session)
        store._check_run_is_active(run)
        experiment_id = run.experiment_id
        held = {tuple(row) for row in session.execute(query).all()}
    if not wanted <= held:
        return False
    store._log_model_metrics(run_id, metrics, experiment_id=experiment_id)
    return True


def metric_points(store, run_id: str, key: str) -> list[tuple[int, float]]:
    """Metric `key` of run `run_id` as [(step, value)], in step order, then in logging order
    (timestamp), as MLflow's get_metric_history gives them sorted so; a NaN is a NaN."""
    # lazy: as above
    import sqlalchemy
    from mlflow.store.tracking.dbmodels.models import SqlMetric

    table = SqlMetric.__table__
    query = (
        sqlalchemy.select(table.c.step, table.c.value, table.c.is_nan)
        .where(table.c.run_uuid == run_id, table.c.key == key)
        .order_by(table.c.step, table.c.timestamp, table.c.value)
    )
    with store.ManagedSessionMaker() as session:
        rows = session.execute(query).all()
    return [(step, math.nan if is_nan else value) for step, value, is_nan in rows]
