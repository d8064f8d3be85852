"""What a command pays once, whatever it trains: a new store and the end of the process.

    .venv/bin/python benchmarks/command_fixed_cost.py [--repeats 3]

1. A new sqlite store, in a fresh process each time (the imports not counted): made by MLflow
   (its tables, then every schema migration) against nnlab's copy of the migrated template
   (nnlab.tracking.store.new_store; the template already in the cache, as after the first
   store).
2. `nnlab-train trainer.max_epochs=3` on a new store, wall time: the console command (which
   ends without the interpreter's teardown, nnlab.quick_exit) against the same `main`
   ended by `sys.exit`, as before.

The two ways alternate, median of `--repeats`, so a machine that slows down slows both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent

NEW_STORE = {
    "MLflow makes it (tables + migrations)": (
        "from mlflow.tracking import MlflowClient\n"
        "start = time.perf_counter()\n"
        "MlflowClient(uri).search_experiments()\n"
    ),
    "nnlab copies the migrated template": (
        "from nnlab.tracking.store.client import get_client\n"
        "start = time.perf_counter()\n"
        "get_client(uri).search_experiments()\n"
    ),
}
STORE_PROGRAM = "import sys, time\nuri = sys.argv[1]\n{body}print(time.perf_counter() - start)\n"

RUN = ["trainer.max_epochs=3", "trainer.progress=none"]
ENDINGS = {
    "`nnlab-train` (no teardown)": [str(BIN / "nnlab-train"), *RUN],
    "the same main, then sys.exit (teardown)": [
        sys.executable,
        "-c",
        "import sys; from nnlab.cli.train import main; sys.argv[0] = 'nnlab-train'; "
        "sys.exit(main())",
        *RUN,
    ],
}


def store_seconds(body: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        program = STORE_PROGRAM.format(body=body)
        out = subprocess.run(
            [sys.executable, "-c", program, uri], capture_output=True, text=True, check=True
        )
        return float(out.stdout.strip().splitlines()[-1])


def run_seconds(command: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
            "NNLAB_HYDRA_DIR": f"{tmp}/hydra",
        }
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env)
        return time.perf_counter() - start


def alternating(ways: dict, measure, repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(repeats):
        for way, what in ways.items():
            times[way].append(measure(what))
    return {way: statistics.median(t) for way, t in times.items()}


def table(title: str, unit: str, medians: dict[str, float]) -> list[str]:
    baseline = next(iter(medians.values()))
    lines = [title, "", f"| way | {unit} | vs the first |", "|---|---|---|"]
    lines += [f"| {way} | {t:.2f} | {t / baseline:.2f} |" for way, t in medians.items()]
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    store_seconds(NEW_STORE["nnlab copies the migrated template"])  # the template, once
    lines = table(
        f"## A new store, in a fresh process (median of {args.repeats})",
        "s",
        alternating(NEW_STORE, store_seconds, args.repeats),
    )
    lines += table(
        f"## A 3-epoch run, end to end (median of {args.repeats})",
        "wall, s",
        alternating(ENDINGS, run_seconds, args.repeats),
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
