"""Runs written per second: into a sqlite store, and into the shared tracking server
(scripts/tracking_server.py: PostgreSQL + mlflow server, over HTTP) with authentication off
and on (MLflow's basic-auth app: every request's password is checked), with 1 and 8 writers.

    .venv/bin/python benchmarks/store_writes.py [--runs 10]

Each writer is a process that opens, logs (8 params, 20 metric values in one batch, 3 tags)
and closes `--runs` runs through nnlab.tracking.store.runs.open_run, as a job does. Runs per second
= all runs / wall time from the first writer's start to the last one's end (process start
and imports included, the same for both stores).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WRITER = """
import sys
from mlflow.entities import Metric, Param
from nnlab.tracking.store.client import get_client
from nnlab.tracking.store.runs import open_run
uri, name, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = get_client(uri)
for i in range(runs):
    with open_run(client, "bench", uri, f"{name}-{i}", {"nnlab.task": "binary"}) as run_id:
        client.log_batch(
            run_id,
            metrics=[Metric("train/loss", 1.0 / (k + 1), 0, k) for k in range(20)],
            params=[Param(f"p{k}", str(k)) for k in range(8)],
        )
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(uri: str, writers: int, runs: int, credentials: dict | None = None) -> float:
    from nnlab.tracking.store.client import get_client

    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, **(credentials or {})}
    os.environ.update(credentials or {})
    # Create (migrate) the store first, as a sweep's parent run does before its jobs start:
    # eight processes creating one sqlite schema at once would race.
    get_client(uri).search_experiments()
    start = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, uri, f"w{w}", str(runs)], env=env)
        for w in range(writers)
    ]
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError(f"a writer failed on {uri}")
    return writers * runs / (time.perf_counter() - start)


def server_results(store: str, options: list[str], runs: int) -> dict:
    """Start scripts/tracking_server.py with `options`, write to it with 1 and 8 writers."""
    from nnlab.tracking.server.secrets import read_env_file

    data = Path(tempfile.mkdtemp(prefix="nnlab-bench-server-", dir="/tmp"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "tracking_server.py"), "--data", str(data),
         "--port", str(port), "--db-port", str(free_port()), *options],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    results = {}
    try:
        assert server.stdout.readline().startswith("ready")
        credentials = None
        if "--no-auth" not in options:
            assert server.stdout.readline().startswith("credentials")
            credentials = read_env_file(data / "admin.env")
        for writers in (1, 8):
            url = f"http://127.0.0.1:{port}"
            results[(store, writers)] = write(url, writers, runs, credentials)
    finally:
        server.terminate()
        server.wait(timeout=120)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10, help="runs per writer")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for writers in (1, 8):
            uri = f"sqlite:///{tmp}/w{writers}/mlflow.db"
            results[("sqlite", writers)] = write(uri, writers, args.runs)
    for store, options in (("server", ["--no-auth"]), ("auth", [])):
        results.update(server_results(store, options, args.runs))
    print(f"runs written per second ({args.runs} runs per writer)")
    print("| store | 1 writer | 8 writers |")
    print("|---|---|---|")
    for store, label in (
        ("sqlite", "sqlite file"),
        ("server", "mlflow server on PostgreSQL (HTTP), no authentication"),
        ("auth", "the same with authentication (basic-auth app)"),
    ):
        print(f"| {label} | {results[(store, 1)]:.1f} | {results[(store, 8)]:.1f} |")


if __name__ == "__main__":
    main()
