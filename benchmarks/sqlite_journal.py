"""What a store write costs in sqlite's WAL mode (nnlab.tracking.store.sqlite_wal) against its
default rollback journal, in one process, the two interleaved round by round.

    .venv/bin/python benchmarks/sqlite_journal.py [--rounds 5] [--calls 100]

Each round makes a fresh store in each mode and times, per call: set_tag, log_batch of 7
metrics (one epoch of a run's curves), create_run. The rollback journal is what a store gets
without nnlab's connect hook, which this benchmark removes for that store's engine. Prints a
Markdown table of the medians over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import Engine

from nnlab.tracking.store import sqlite_wal


def per_call_ms(db: Path, wal: bool, calls: int) -> dict[str, float]:
    hooked = sqlalchemy.event.contains(Engine, "connect", sqlite_wal._write_ahead_log)
    if not wal and hooked:
        sqlalchemy.event.remove(Engine, "connect", sqlite_wal._write_ahead_log)
    if wal and not hooked:
        sqlalchemy.event.listen(Engine, "connect", sqlite_wal._write_ahead_log)
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.create_experiment("bench")
    run_id = client.create_run(experiment).info.run_id
    costs = {}
    started = time.perf_counter()
    for i in range(calls):
        client.set_tag(run_id, f"tag{i}", "value")
    costs["set_tag"] = time.perf_counter() - started
    started = time.perf_counter()
    for epoch in range(calls):
        client.log_batch(run_id, metrics=[Metric(f"m{k}", 0.5, 0, epoch) for k in range(7)])
    costs["log_batch, 7 metrics"] = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(calls):
        client.create_run(experiment)
    costs["create_run"] = time.perf_counter() - started
    return {name: seconds / calls * 1e3 for name, seconds in costs.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    measured: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for wal in (False, True):
                db = Path(tmp) / f"{'wal' if wal else 'journal'}-{r}.db"
                measured[wal].append(per_call_ms(db, wal, args.calls))
    print("| call | rollback journal, ms | WAL, ms | WAL / journal |")
    print("|---|---|---|---|")
    for name in measured[True][0]:
        journal = statistics.median(m[name] for m in measured[False])
        wal = statistics.median(m[name] for m in measured[True])
        print(f"| {name} | {journal:.2f} | {wal:.2f} | {wal / journal:.2f} |")


if __name__ == "__main__":
    main()
