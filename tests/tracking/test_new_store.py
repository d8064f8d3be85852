"""A new sqlite store made from nnlab's migrated template (nnlab.tracking.store.new_store) is
the store MLflow would have made: the same schema at the same revision, the same Default
experiment where it is opened, the same ids after it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from nnlab.tracking.store.client import get_client
from nnlab.tracking.store.new_store import create_store, template_path


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    """A cache folder of this test's own: the template is built here, from nothing."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def schema(db: Path) -> list[tuple]:
    """Every table and index with its definition's lines, sorted: MLflow itself writes a
    table's constraints in an order that changes from one process to the next."""
    with sqlite3.connect(db) as con:
        entries = con.execute("select type, name, tbl_name, sql from sqlite_master").fetchall()
    return sorted(
        (kind, name, of, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
        for kind, name, of, sql in entries
    )


def table(db: Path, query: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(query).fetchall()


def experiments_as_mlflow_shows_them(client: MlflowClient) -> list[tuple]:
    return sorted(
        (e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage)
        for e in client.search_experiments()
    )


def test_a_store_from_the_template_is_the_store_mlflow_makes(own_cache, tmp_path, monkeypatch):
    # The template is built from one folder and copied from another: the Default experiment's
    # artifacts belong where the store is opened (the working folder, as MLflow does it).
    for folder in ("built-here", "opened-here"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        if folder == "built-here":
            assert create_store(tmp_path / "first.db")
    by_mlflow, by_nnlab = tmp_path / "mlflow" / "mlflow.db", tmp_path / "nnlab" / "mlflow.db"
    by_mlflow.parent.mkdir()
    mlflow_client = MlflowClient(f"sqlite:///{by_mlflow}")
    mlflow_client.search_experiments()
    nnlab_client = get_client(f"sqlite:///{by_nnlab}")
    assert template_path().exists()  # the store was copied, not migrated in place

    assert schema(by_nnlab) == schema(by_mlflow)
    revision = "select version_num from alembic_version"
    assert table(by_nnlab, revision) == table(by_mlflow, revision) != []
    assert experiments_as_mlflow_shows_them(nnlab_client) == experiments_as_mlflow_shows_them(
        mlflow_client
    )
    assert experiments_as_mlflow_shows_them(nnlab_client)[0][:2] == ("0", "Default")
    # The next experiment gets the same id in both (the template's emptied table counts on)
    assert nnlab_client.create_experiment("next") == mlflow_client.create_experiment("next")
    run = nnlab_client.create_run(nnlab_client.get_experiment_by_name("next").experiment_id)
    nnlab_client.log_param(run.info.run_id, "lr", "0.1")
    assert nnlab_client.get_run(run.info.run_id).data.params == {"lr": "0.1"}


def test_the_second_store_is_a_copy_of_the_first_template(own_cache, tmp_path):
    assert create_store(tmp_path / "a.db")
    built = template_path().stat()
    with sqlite3.connect(template_path()) as con:
        con.execute("PRAGMA user_version = 4242")  # a mark only a copy of the template has
    assert create_store(tmp_path / "b.db")
    assert table(tmp_path / "b.db", "PRAGMA user_version") == [(4242,)]
    assert template_path().stat().st_ino == built.st_ino  # not built again
    assert not list(tmp_path.glob(".*.new"))  # the staged copies are gone


def test_an_existing_store_is_never_replaced(own_cache, tmp_path):
    db = tmp_path / "mlflow.db"
    client = get_client(f"sqlite:///{db}")
    client.create_experiment("kept")
    assert not create_store(db)  # as when another process made it a moment earlier
    assert client.get_experiment_by_name("kept") is not None
    assert not list(tmp_path.glob(".*.new"))


def test_without_a_usable_cache_mlflow_makes_the_store(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    assert not create_store(db)
    assert not db.exists()  # nothing half-made is left for MLflow to trip on
    client = get_client(f"sqlite:///{db}")
    assert client.create_experiment("works") == "1"
