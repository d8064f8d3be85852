"""A new sqlite store starts as a copy of an empty, migrated one.

MLflow makes a new store by creating its tables and then running every one of its schema
migrations, one after another: ~1 s here, paid by the first command on every new store (a
fresh checkout's first run, each benchmark's or test's store). For one MLflow version the
result is the same file every time, so nnlab migrates once, into a template kept in the
user's cache folder (one per MLflow version), and copies it. MLflow then finds its tables at
its latest revision and adds the one row a new store has, the Default experiment (whose
artifact folder depends on where the store is opened), as it would have.

Anything that goes wrong here (no cache folder, a read-only one, a filesystem without hard
links) leaves the store to MLflow, which creates it the slow way.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/nnlab, else ~/.cache/nnlab."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nnlab"


def template_path() -> Path:
    from mlflow.version import VERSION

    return cache_dir() / f"empty-store-mlflow-{VERSION}.db"


def create_store(db: Path) -> bool:
    """Make `db` (which must not exist yet) a copy of the empty migrated store; False when it
    was left to MLflow. Another process creating `db` at the same moment is harmless: the
    copy lands under `db`'s name only if nothing is there yet."""
    try:
        template = template_path()
        if not template.exists():
            _build_template(template)
        staged = db.with_name(f".{db.name}.{os.getpid()}.new")
        try:
            # Through sqlite's backup, not a file copy: the new store is a consistent database
            # even if the template were being replaced at this moment.
            _copy_database(template, staged)
            os.link(staged, db)  # atomic, and refuses to replace a store made meanwhile
        finally:
            staged.unlink(missing_ok=True)
    except (OSError, sqlite3.Error):
        return False
    return True


def _build_template(template: Path) -> None:
    """Let MLflow create and migrate a store, then empty it of the Default experiment."""
    from mlflow.tracking import MlflowClient

    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=template.parent, prefix=".building-") as tmp:
        made = Path(tmp) / "mlflow.db"
        MlflowClient(f"sqlite:///{made}").search_experiments()  # creates and migrates it
        staged = Path(tmp) / "template.db"
        _copy_database(made, staged)
        with contextlib.closing(sqlite3.connect(staged)) as con:
            with con:
                con.execute("DELETE FROM experiments")  # MLflow adds Default where it opens
            con.execute("PRAGMA journal_mode=DELETE")  # one file; nnlab's stores switch to WAL
        os.replace(staged, template)  # whole or not at all, if two processes build at once


def _copy_database(source: Path, target: Path) -> None:
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)
