"""nnlab's bulk metric writes (nnlab.tracking.store.bulk_metrics) leave a database store as
MLflow's own log_batch leaves it: the same rows, the same latest values, the same refusals."""

from __future__ import annotations

import math
import sqlite3

import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from nnlab.tracking.store.bulk_metrics import database_store, insert_metrics, metric_points
from nnlab.tracking.store.client import get_client, log_metrics, log_runs_metrics
from nnlab.tracking.store.queries import metric_history

T = 1_700_000_000_000  # a timestamp, ms


def flushes() -> list[list[Metric]]:
    """Three flushes as a run writes them, with what MLflow treats specially: NaN, both
    infinities, a key that first appears later, a step older than the latest, and one step with
    two timestamps (the latest is the later)."""
    first = [Metric(k, 0.5 + step, T + step, step) for step in range(30) for k in ("a", "b")]
    second = [
        Metric("a", math.nan, T + 30, 30),
        Metric("b", math.inf, T + 30, 30),
        Metric("c", -math.inf, T + 31, 31),
        Metric("c", 2.0, T + 32, 31),
        Metric("a", 7.0, T + 33, 3),  # older step: not the latest
    ]
    third = [Metric("b", 1.25, T + 40, 40), Metric("a", -3.0, T + 41, 29)]
    return [first, second, third]


def rows(db: str, run_id: str, table: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return sorted(
            con.execute(
                f"select key, value, timestamp, step, is_nan from {table} where run_uuid = ?",
                (run_id,),
            ).fetchall()
        )


def test_bulk_writes_equal_log_batch(store):
    client = get_client(store)
    exp = client.create_experiment("bulk")
    by_mlflow, by_nnlab, shifted_by_mlflow, beside = (
        client.create_run(exp).info.run_id for _ in range(4)
    )
    db = client._tracking_client.store
    assert database_store(client) is db
    for batch in flushes():
        client.log_batch(by_mlflow, metrics=batch)
        # Two runs in one write, as a population's members flush; the second's values differ
        shifted = [Metric(m.key, m.value + 1, m.timestamp, m.step) for m in batch]
        client.log_batch(shifted_by_mlflow, metrics=shifted)
        assert insert_metrics(db, {by_nnlab: batch, beside: shifted})
    path = store.removeprefix("sqlite:///")
    for table in ("metrics", "latest_metrics"):
        assert rows(path, by_nnlab, table) == rows(path, by_mlflow, table)
        assert rows(path, beside, table) == rows(path, shifted_by_mlflow, table)
    assert len(rows(path, by_nnlab, "metrics")) == 60 + 5 + 2
    # What the UI and reports read: the run's latest values and each curve
    mlflow_run, nnlab_run = client.get_run(by_mlflow), client.get_run(by_nnlab)
    assert str(nnlab_run.data.metrics) == str(mlflow_run.data.metrics)  # nan == nan as text
    assert nnlab_run.data.metrics["b"] == 1.25 and nnlab_run.data.metrics["c"] == 2.0
    latest = [m for m in client.get_metric_history(by_nnlab, "a") if m.step == 30]
    assert len(latest) == 1 and math.isnan(latest[0].value)


def test_bulk_writes_refuse_what_log_batch_refuses(store):
    client = get_client(store)
    run_id = client.create_run(client.create_experiment("refused")).info.run_id
    with pytest.raises(MlflowException, match="bad//name"):
        log_metrics(client, run_id, [Metric("bad//name", 1.0, T, 0)])
    client.delete_run(run_id)
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        log_metrics(client, run_id, [Metric("a", 1.0, T, 0)])
    # Written with another run, the deleted one refuses the whole write: nothing half-written
    other = client.create_run(client.get_run(run_id).info.experiment_id).info.run_id
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        log_runs_metrics(
            client, {other: [Metric("a", 1.0, T, 0)], run_id: [Metric("a", 1.0, T, 0)]}
        )
    assert client.get_metric_history(other, "a") == []
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        client.log_batch(run_id, metrics=[Metric("a", 1.0, T, 0)])
    assert client.get_metric_history(run_id, "a") == []


def test_a_duplicate_row_falls_back_to_log_batch(store):
    """A row already in the store (a retried flush) is refused by the bulk INSERT's primary key;
    nothing of that batch is half-written, and MLflow's log_batch then writes what is new."""
    client = get_client(store)
    run_id = client.create_run(client.create_experiment("again")).info.run_id
    log_metrics(client, run_id, [Metric("a", 1.0, T, 0)])
    assert not insert_metrics(
        client._tracking_client.store,
        {run_id: [Metric("a", 2.0, T + 1, 1), Metric("a", 1.0, T, 0)]},
    )
    assert [m.step for m in client.get_metric_history(run_id, "a")] == [0]
    log_metrics(client, run_id, [Metric("a", 2.0, T + 1, 1), Metric("a", 1.0, T, 0)])
    assert [m.value for m in client.get_metric_history(run_id, "a")] == [1.0, 2.0]
    assert client.get_run(run_id).data.metrics["a"] == 2.0


def test_a_curve_read_back_in_one_select_equals_mlflows_history(store):
    """metric_history reads a database store with one SELECT (bulk_metrics.metric_points): the
    same points, in step then logging order, as MLflow's get_metric_history sorted so; NaN,
    infinities and two points at one step included."""
    client = get_client(store)
    run_id = client.create_run(client.create_experiment("read")).info.run_id
    for batch in flushes():
        log_metrics(client, run_id, batch)
    db = database_store(client)
    for key in ("a", "b", "c", "never logged"):
        mlflow = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
        expected = [(m.step, m.value) for m in mlflow]
        got = metric_points(db, run_id, key)
        assert str(got) == str(expected)  # nan == nan as text
        assert str(metric_history(client, run_id, key)) == str(got)
    steps = [step for step, _ in metric_points(db, run_id, "a")]
    assert steps == sorted(steps) and steps.count(3) == 2 and len(steps) == 30 + 3


def test_a_population_flushes_its_members_in_one_write(store, monkeypatch):
    """PopulationLogger writes every member's pending values at once, on its own timer; each
    run gets its own curve, and a member without a run (nnlab-reproduce's) writes nothing."""
    from nnlab.tracking.logger import BufferedMlflowLogger, PopulationLogger
    from nnlab.tracking.store import client as client_module

    client = get_client(store)
    exp = client.create_experiment("population")
    run_ids = [client.create_run(exp).info.run_id for _ in range(3)]
    members = [BufferedMlflowLogger(client, r) for r in run_ids] + [
        BufferedMlflowLogger(None, None)
    ]
    writes = []
    bulk = client_module.insert_metrics
    monkeypatch.setattr(
        client_module,
        "insert_metrics",
        lambda s, by_run: writes.append(list(by_run)) or bulk(s, by_run),
    )
    population = PopulationLogger(members, flush_every_s=3600)
    for epoch in range(4):
        for k in range(4):
            population.record(k, epoch, {"val/loss": k + epoch / 10})
    assert writes == []  # not due yet
    population.flush_every_s = 0  # due at the next record
    population.record(0, 4, {"val/loss": 0.4})
    assert writes == [run_ids]  # one write for every member that has a run
    for k, run_id in enumerate(run_ids):
        expected = [k + e / 10 for e in range(4)] + ([0.4] if k == 0 else [])
        assert [m.value for m in client.get_metric_history(run_id, "val/loss")] == expected
    assert members[3].history["val/loss"][-1] == (3, 3.3)  # kept in memory all the same


def test_linking_written_metrics_to_a_model_leaves_what_log_batch_leaves(store, monkeypatch):
    """A run's step-0 metrics linked to its logged model (as Model.log links them) through
    nnlab's log_metrics: the same rows in both tables as MLflow's log_batch leaves; a metric the
    run does not hold yet goes through log_batch, which writes it too."""
    client = get_client(store)
    exp = client.create_experiment("linked")
    path = store.removeprefix("sqlite:///")
    step_zero = [Metric("a", 0.5, T, 0), Metric("b", math.nan, T, 0), Metric("c", 2.0, T + 1, 0)]
    tables = {}
    for way in ("mlflow", "nnlab"):
        run_id = client.create_run(exp).info.run_id
        log_metrics(client, run_id, [*step_zero, Metric("a", 0.25, T + 5, 1)])
        model_id = client.create_logged_model(exp, source_run_id=run_id).model_id
        linked = [Metric(m.key, m.value, m.timestamp, 0, model_id=model_id) for m in step_zero]
        if way == "mlflow":
            client.log_batch(run_id, metrics=linked)
        else:
            batches = []
            monkeypatch.setattr(client, "log_batch", lambda *a, b=batches, **k: b.append(a))
            log_metrics(client, run_id, linked)
            assert batches == []  # linked without MLflow's second try at the rows
            monkeypatch.undo()
        with sqlite3.connect(path) as con:
            tables[way] = sorted(
                con.execute(
                    "select metric_name, metric_timestamp_ms, metric_step, metric_value,"
                    " experiment_id from logged_model_metrics where model_id = ?",
                    (model_id,),
                ).fetchall()
            )
        tables[way + " metrics"] = rows(path, run_id, "metrics")
        tables[way + " latest"] = rows(path, run_id, "latest_metrics")
    assert len(tables["nnlab"]) == 3
    for suffix in ("", " metrics", " latest"):
        assert str(tables["nnlab" + suffix]) == str(tables["mlflow" + suffix])
    # A step-0 point the run has not written yet: written and linked, as log_batch does
    run_id = client.create_run(exp).info.run_id
    model_id = client.create_logged_model(exp, source_run_id=run_id).model_id
    log_metrics(client, run_id, [Metric("d", 1.5, T, 0, model_id=model_id)])
    assert [m.value for m in client.get_metric_history(run_id, "d")] == [1.5]
    assert [(m.key, m.value) for m in client.get_logged_model(model_id).metrics] == [("d", 1.5)]
