#!/usr/bin/env python
"""A shared MLflow tracking server on PostgreSQL, with artifacts served over HTTP.

    .venv/bin/python scripts/tracking_server.py [--data DIR] [--host 0.0.0.0] [--port 5000]
    make server                       # the same, data in ./server-data, on 127.0.0.1:5000

Starts a PostgreSQL server on a data folder of its own (created on first use; Debian's
`postgresql` package, run as the `postgres` user when started as root, since PostgreSQL
refuses to run as root), then `mlflow server` on it with `--serve-artifacts`: workers upload
and download artifacts through the server, so they need no filesystem in common with it.
Point a sweep at it from any machine that reaches it:

    MLFLOW_TRACKING_URI=http://<host>:5000 nnlab-train -m ...

Prints `ready: http://<host>:<port>` once the server answers. Ctrl-C or SIGTERM stops
MLflow, then PostgreSQL; nothing keeps running.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DB_NAME = "mlflow"


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        sys.exit(
            f"tracking_server: {name}: PostgreSQL is not installed (apt-get install postgresql)"
        )
    return found[-1]


def as_db_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def start_postgres(data: Path, port: int) -> Path:
    pgdata, sockets = data / "pg", data / "pg-sockets"
    sockets.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        uid = pwd.getpwnam("postgres")
        for path in (data, sockets):
            os.chown(path, uid.pw_uid, uid.pw_gid)
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            as_db_user([pg_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "-A", "trust"]),
            check=True,
            capture_output=True,
        )
    options = f"-p {port} -k {sockets} -h 127.0.0.1"
    subprocess.run(
        as_db_user(
            [
                pg_bin("pg_ctl"),
                "-D",
                str(pgdata),
                "-o",
                options,
                "-l",
                str(data / "pg.log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    created = subprocess.run(
        as_db_user(
            [pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", DB_NAME]
        ),
        capture_output=True,
        text=True,
    )
    if created.returncode != 0 and "already exists" not in created.stderr:
        raise RuntimeError(f"createdb: {created.stderr.strip()}")
    return pgdata


def stop_postgres(pgdata: Path) -> None:
    subprocess.run(
        as_db_user([pg_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"]),
        capture_output=True,
    )


def wait_until_up(url: str, server: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"mlflow server did not answer at {url} within {timeout_s:.0f} s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("server-data"), help="database + artifacts")
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    p.add_argument("--port", type=int, default=5000, help="MLflow's port")
    p.add_argument("--db-port", type=int, default=5433, help="PostgreSQL's port (local only)")
    p.add_argument("--workers", type=int, default=4, help="MLflow server worker processes")
    args = p.parse_args(argv)
    data = args.data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    pgdata = start_postgres(data, args.db_port)
    store = f"postgresql+psycopg2://postgres@127.0.0.1:{args.db_port}/{DB_NAME}"
    artifacts = data / "artifacts"
    artifacts.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            store,
            "--serve-artifacts",
            "--artifacts-destination",
            str(artifacts),
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--workers",
            str(args.workers),
        ],
        env=env,
        stdout=sys.stderr,  # the server's chatter on stderr; stdout says only when it is ready
    )

    def stop(signum=None, frame=None):
        # Once: a second signal (a supervisor repeating it) must not cut the cleanup short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    url = f"http://{'127.0.0.1' if args.host == '0.0.0.0' else args.host}:{args.port}"
    try:
        wait_until_up(url, server)
        print(f"ready: {url}   (store {store}, artifacts {artifacts})", flush=True)
        server.wait()
        return server.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        stop_postgres(pgdata)


if __name__ == "__main__":
    sys.exit(main())
