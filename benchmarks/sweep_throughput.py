"""Sweep throughput: a 24-job sweep run sequentially, with 2 joblib workers, and on a Ray
head with 2 CPUs (started here, stopped after).

    .venv/bin/python benchmarks/sweep_throughput.py [--epochs 200] [--jobs 24]

Each variant is one `nnlab-train -m` process on its own temporary sqlite store (moons, MLP
2-10-5-1, batch 32). Reports wall time, jobs per minute, the per-job cost outside training
(run creation, params, figures, checkpoint, artifacts: each run's `nnlab.overhead_seconds`
tag), the launcher's own cost per job (wall x workers / jobs - fit - that overhead: process
start, imports, scheduling) and the parallel efficiency, T_sequential / (2 x T_parallel).
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

from nnlab.tracking.store.client import get_client
from nnlab.tracking.store.names import FIT_SECONDS_TAG, OVERHEAD_SECONDS_TAG, PARENT_TAG
from nnlab.tracking.store.queries import search_all

BIN = Path(sys.executable).parent


def sweep(jobs: int, epochs: int, workers: int, ray_address: str | None = None) -> dict:
    lrs = ",".join(f"{0.001 * 1.3**i:.6f}" for i in range(jobs))
    launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={workers}"] if workers > 1 else []
    if ray_address:
        launcher = ["hydra/launcher=nnlab_ray", f"hydra.launcher.ray.init.address={ray_address}"]
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "NNLAB_HYDRA_DIR": f"{tmp}/hydra"}
        start = time.perf_counter()
        subprocess.run(
            [
                str(BIN / "nnlab-train"),
                "-m",
                *launcher,
                # One launcher job per sweep job: this measures the launchers (the population
                # sweeper would train the 24 as one population; benchmarks/sweep_populations.py).
                "hydra/sweeper=basic",
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
        fit = statistics.mean(float(r.data.tags[FIT_SECONDS_TAG]) for r in runs)
        overhead = statistics.mean(float(r.data.tags[OVERHEAD_SECONDS_TAG]) for r in runs)
        launch = wall * workers / jobs - fit - overhead
        return {"wall": wall, "fit": fit, "overhead": overhead, "launch": launch}


def ray_head(cpus: int):
    """Start a Ray head on 127.0.0.1 in a temp dir; returns (address, stop function)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="nnlab-bench-ray-", dir="/tmp")
    subprocess.run(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            f"--num-cpus={cpus}",
            "--include-dashboard=false",
            f"--temp-dir={temp}",
            "--disable-usage-stats",
        ],
        check=True,
        capture_output=True,
    )

    def stop():
        subprocess.run(["pkill", "-TERM", "-f", temp], capture_output=True)
        time.sleep(3)
        subprocess.run(["pkill", "-KILL", "-f", temp], capture_output=True)

    return f"127.0.0.1:{port}", stop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=24)
    args = parser.parse_args()
    seq = sweep(args.jobs, args.epochs, 1)
    par = sweep(args.jobs, args.epochs, 2)
    address, stop = ray_head(2)
    try:
        ray = sweep(args.jobs, args.epochs, 2, ray_address=address)
    finally:
        stop()
    print(f"{args.jobs}-job sweep, moons 2-10-5-1, {args.epochs} epochs, batch 32")
    print("| variant | wall s | jobs/min | fit s/job | run overhead s/job | launcher s/job |")
    print("|---|---|---|---|---|---|")
    for name, r in [("sequential", seq), ("joblib, 2 workers", par), ("Ray, 2 CPUs", ray)]:
        print(
            f"| {name} | {r['wall']:.1f} | {60 * args.jobs / r['wall']:.1f} | {r['fit']:.2f} | "
            f"{r['overhead']:.3f} | {r['launch']:.2f} |"
        )
    for name, r in [("joblib", par), ("Ray", ray)]:
        print(f"parallel efficiency, {name}: {seq['wall'] / (2 * r['wall']):.2f}")


if __name__ == "__main__":
    main()
