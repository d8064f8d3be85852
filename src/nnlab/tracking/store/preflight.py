"""Is the tracking store usable? Asked before a run starts, and asked of any error a run meets.

A broken store must give one clear line within seconds, not a traceback and not a hang in
retries: a read-only or full `mlruns/`, a locked or corrupt sqlite file, a tracking server
that refuses connections. `check_store` probes the store cheaply before anything is created;
`store_failure` recognises an exception raised later as the store's fault.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

LOCK_WAIT_S = 10.0  # how long a locked sqlite store is waited for before giving up
SERVER_TIMEOUT_S = 5.0
MIN_FREE_BYTES = 5 * 1024 * 1024
STORE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}
STORE_MODULES = ("mlflow", "sqlalchemy", "sqlite3", "requests", "urllib3")


class StoreError(RuntimeError):
    """The tracking store cannot be used; the message is the one line the user sees."""


def check_store(uri: str) -> None:
    if uri.startswith("sqlite:///"):
        _check_sqlite(Path(uri.removeprefix("sqlite:///")))
    elif uri.startswith(("http://", "https://")):
        _check_server(uri)


def _check_sqlite(db: Path) -> None:
    folder = db.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"cannot create the store folder {folder}: {err.strerror}") from err
    if not os.access(folder, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
        raise StoreError(f"{folder} is read-only")
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise StoreError(f"the disk holding {folder} is full ({free // 1024} KiB free)")
    if not db.exists():
        # MLflow creates and migrates it, in two INFO lines of its own (quieted in
        # nnlab.training.setup.quiet_startup): one line of nnlab's says what happens.
        print(f"nnlab: creating the store at {db}", flush=True)
        return
    try:
        with sqlite3.connect(db, timeout=LOCK_WAIT_S) as con:
            con.execute("PRAGMA schema_version").fetchone()  # fails fast on a non-database
            con.execute("BEGIN IMMEDIATE")  # waits up to LOCK_WAIT_S for a writer's lock
            con.rollback()
    except sqlite3.DatabaseError as err:
        reason = str(err)
        if "locked" in reason:
            reason = f"locked by another process for more than {LOCK_WAIT_S:.0f} s"
        elif "not a database" in reason or "malformed" in reason:
            reason = "not a valid sqlite database (corrupt?)"
        raise StoreError(f"{db}: {reason}") from err


def _check_server(uri: str) -> None:
    # lazy: requests loads only for an HTTP store
    import requests

    base = uri.rstrip("/")
    try:
        requests.get(base + "/health", timeout=SERVER_TIMEOUT_S, verify=_verify())
        # A server with authentication (scripts/tracking_server.py) answers /health to
        # anyone: whether these credentials get in is asked of an API that needs them.
        answer = requests.get(
            base + "/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            auth=_credentials(),
            timeout=SERVER_TIMEOUT_S,
            verify=_verify(),
        )
    except requests.exceptions.SSLError as err:
        raise StoreError(
            "the server's TLS certificate is not trusted here: set "
            "MLFLOW_TRACKING_SERVER_CERT_PATH to the server's certificate"
        ) from err
    except requests.exceptions.ConnectionError as err:
        raise StoreError(
            f"tracking server {uri} is unreachable (connection refused or no route)"
        ) from err
    except requests.exceptions.Timeout as err:
        raise StoreError(
            f"tracking server {uri} did not answer within {SERVER_TIMEOUT_S:.0f} s"
        ) from err
    if answer.status_code == 401:
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        raise StoreError(
            f"the server refused the password of user {user}: check "
            "MLFLOW_TRACKING_PASSWORD (the user's env file: set -a; . <file>; set +a)"
            if user
            else "the server asks for credentials: set MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD (e.g. set -a; . server-data/admin.env; set +a)"
        )


def _credentials() -> tuple[str, str] | None:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    return (user, os.environ.get("MLFLOW_TRACKING_PASSWORD", "")) if user else None


def _verify() -> bool | str:
    """What requests checks an HTTPS server's certificate against, as MLflow's client does."""
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        return False
    return os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True


def store_failure(exc: BaseException) -> str | None:
    """A one-line reason if `exc` (or what caused it) is the store failing, else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StoreError):
            return str(exc)
        if isinstance(exc, OSError) and exc.errno in STORE_ERRNOS:
            return f"{exc.strerror} ({getattr(exc, 'filename', '') or 'store'})"
        if type(exc).__module__.split(".")[0] in STORE_MODULES:
            text = str(exc).strip().splitlines()
            return f"{type(exc).__name__}: {text[0][:300] if text else ''}"
        exc = exc.__cause__ or exc.__context__
    return None
