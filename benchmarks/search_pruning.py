"""A 40-trial Optuna search of seed 003's moons task (MLP on 300 points, full-batch SGD, 2000
epochs), with no pruner and with the median pruner, each in its own temporary store.

    .venv/bin/python benchmarks/search_pruning.py [--trials 40] [--epochs 2000]

Searches what `sweep=optuna` searches (lr on a log scale, the width of both hidden layers, the
activation), minimising val/loss, TPE seeded alike; the median pruner starts after 3 trials
and 100 epochs. Reports wall time, the best val/loss reached, how many trials were
pruned and the epochs trained in all (pruned trials stop early), and the ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def search(trials: int, epochs: int, pruner: str) -> dict:
    import optuna
    from optuna.trial import TrialState

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
            "NNLAB_HYDRA_DIR": f"{tmp}/hydra",
        }
        command = [
            str(BIN / "nnlab-train"),
            "-m",
            "experiment=seed003_moons",
            "sweep=optuna",  # lr (log), width of both hidden layers, activation
            f"hydra.sweeper.n_trials={trials}",
            f"hydra.sweeper.pruner={pruner}",
            "hydra.sweeper.pruner_warmup_epochs=100",
            f"trainer.max_epochs={epochs}",
            "trainer.progress=none",
            "tracking.log_model=false",
        ]
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        storage = f"sqlite:///{tmp}/optuna.db"
        (summary,) = optuna.get_all_study_summaries(storage)
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        pruned = study.get_trials(states=(TrialState.PRUNED,))
        epochs_trained = sum(
            len(t.intermediate_values) if t.state == TrialState.PRUNED else epochs
            for t in study.trials
        )
        return {
            "wall": wall,
            "best": study.best_value,
            "pruned": len(pruned),
            "epochs": epochs_trained,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=2000)
    args = parser.parse_args()
    results = {p: search(args.trials, args.epochs, p) for p in ("none", "median")}
    print(
        f"## 7. A {args.trials}-trial search of seed 003's moons task, with and without pruning\n"
    )
    print("| pruner | wall s | best val/loss | trials pruned | epochs trained |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['wall']:.1f} | {r['best']:.3g} | {r['pruned']} | {r['epochs']} |")
    none, median = results["none"], results["median"]
    print(
        f"\nmedian / none: wall {median['wall'] / none['wall']:.2f}, "
        f"epochs {median['epochs'] / none['epochs']:.2f}"
    )


if __name__ == "__main__":
    main()
