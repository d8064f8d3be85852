"""What a metric value costs to write to a sqlite store: MLflow's `log_batch` (batches of
1,000, the most it takes) against nnlab's bulk INSERT (nnlab.tracking.store.bulk_metrics),
interleaved round by round in one process, each round on fresh runs of one store.

    .venv/bin/python benchmarks/bulk_metrics.py [--rounds 5] [--epochs 500]

Each round writes one run's curves the way a flush does: `--epochs` epochs of 5 metrics (a
classifier's train/loss, val/loss, val/acc, val/auroc, val/f1), in flushes of 100 epochs.
Prints a Markdown table of the medians over rounds, microseconds a value.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from mlflow.entities import Metric

from nnlab.tracking.store.bulk_metrics import database_store, insert_metrics
from nnlab.tracking.store.client import get_client

KEYS = ("train/loss", "val/loss", "val/acc", "val/auroc", "val/f1")
EPOCHS_PER_FLUSH = 100


def flushes(epochs: int) -> list[list[Metric]]:
    now = int(time.time() * 1000)
    return [
        [
            Metric(k, 1.0 / (e + 1), now + e, e)
            for e in range(start, start + EPOCHS_PER_FLUSH)
            for k in KEYS
        ]
        for start in range(0, epochs, EPOCHS_PER_FLUSH)
    ]


def us_per_value(write, batches: list[list[Metric]]) -> float:
    started = time.perf_counter()
    for batch in batches:
        write(batch)
    return (time.perf_counter() - started) / sum(map(len, batches)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=500)
    args = parser.parse_args()
    batches = flushes(args.epochs)
    mlflow_us, nnlab_us = [], []
    with tempfile.TemporaryDirectory() as tmp:
        client = get_client(f"sqlite:///{tmp}/mlflow.db")
        experiment = client.create_experiment("bench")
        store = database_store(client)
        for _ in range(args.rounds):
            run_a = client.create_run(experiment).info.run_id
            run_b = client.create_run(experiment).info.run_id

            def by_mlflow(batch, run_id=run_a):
                for i in range(0, len(batch), 1000):
                    client.log_batch(run_id, metrics=batch[i : i + 1000])

            mlflow_us.append(us_per_value(by_mlflow, batches))
            nnlab_us.append(us_per_value(lambda b, r=run_b: insert_metrics(store, {r: b}), batches))
    mlflow, nnlab = statistics.median(mlflow_us), statistics.median(nnlab_us)
    print(f"{args.epochs} epochs x {len(KEYS)} metrics a run, median of {args.rounds} rounds")
    print()
    print("| writer | us a value | vs log_batch |")
    print("|---|---|---|")
    print(f"| MLflow `log_batch` | {mlflow:.1f} | 1.00 |")
    print(f"| nnlab bulk INSERT | {nnlab:.1f} | {nnlab / mlflow:.2f} |")


if __name__ == "__main__":
    main()
