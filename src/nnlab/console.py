"""Warnings for the person at the terminal: one line each, on stderr, once per process.

Python's `warnings` module prints the source line that warned as a second line, and repeats
per call site; a user needs neither.
"""

from __future__ import annotations

import logging
import sys

_already_said: set[str] = set()


def warn(message: str) -> None:
    if message in _already_said:
        return
    _already_said.add(message)
    print(f"nnlab: warning: {message}", file=sys.stderr, flush=True)


def quiet_startup() -> None:
    """A first run's console: matplotlib's "generated new fontManager" and MLflow's "Creating
    initial MLflow database tables" / "Updating database tables" say nothing a user acts on
    (nnlab's store preflight prints "creating the store at ..." instead)."""

    for name in ("matplotlib", "mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
