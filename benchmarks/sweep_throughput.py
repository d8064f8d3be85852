"""Sweep throughput: a 24-job sweep run sequentially and with 2 joblib workers.

    .venv/bin/python benchmarks/sweep_throughput.py [--epochs 200] [--jobs 24]

Each variant is one `nnlab-train -m` process on its own temporary sqlite store (moons, MLP
2-10-5-1, batch 32). Reports wall time, jobs per minute, the per-job cost outside training
(run creation, params, figures, checkpoint, artifacts: each run's `nnlab.overhead_seconds`
tag) and the parallel efficiency, T_sequential / (2 x T_parallel).
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

from nnlab.store.names import FIT_SECONDS_TAG, OVERHEAD_SECONDS_TAG, PARENT_TAG
from nnlab.store.queries import search_all
from nnlab.store.runs import get_client

BIN = Path(sys.executable).parent


def sweep(jobs: int, epochs: int, workers: int) -> dict[str, float]:
    lrs = ",".join(f"{0.001 * 1.3**i:.6f}" for i in range(jobs))
    launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={workers}"] if workers > 1 else []
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "NNLAB_HYDRA_DIR": f"{tmp}/hydra"}
        start = time.perf_counter()
        subprocess.run(
            [
                str(BIN / "nnlab-train"),
                "-m",
                *launcher,
                f"optimizer.lr={lrs}",
                f"trainer.max_epochs={epochs}",
                "trainer.progress=none",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - start
        client = get_client(uri)
        experiment = client.get_experiment_by_name("nnlab").experiment_id
        runs = search_all(client, [experiment], f"tags.`{PARENT_TAG}` != ''")
        runs = [r for r in runs if PARENT_TAG in r.data.tags]
        assert len(runs) == jobs, f"expected {jobs} children, found {len(runs)}"
        return {
            "wall": wall,
            "fit": statistics.mean(float(r.data.tags[FIT_SECONDS_TAG]) for r in runs),
            "overhead": statistics.mean(float(r.data.tags[OVERHEAD_SECONDS_TAG]) for r in runs),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=24)
    args = parser.parse_args()
    seq = sweep(args.jobs, args.epochs, 1)
    par = sweep(args.jobs, args.epochs, 2)
    print(f"{args.jobs}-job sweep, moons 2-10-5-1, {args.epochs} epochs, batch 32")
    print(f"{'variant':<22} {'wall s':>8} {'jobs/min':>9} {'fit s/job':>10} {'overhead s/job':>15}")
    for name, r in [("sequential", seq), ("joblib, 2 workers", par)]:
        print(
            f"{name:<22} {r['wall']:8.1f} {60 * args.jobs / r['wall']:9.1f} {r['fit']:10.2f} "
            f"{r['overhead']:15.3f}"
        )
    print(f"parallel efficiency: {seq['wall'] / (2 * par['wall']):.2f}")


if __name__ == "__main__":
    main()
