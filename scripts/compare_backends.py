#!/usr/bin/env python
"""Train the same network with every backend (nnlab.backends: numpy, torch_scratch, torch, jax,
tensorflow) and lay their curves over each other.

    .venv/bin/python scripts/compare_backends.py [HYDRA OVERRIDES...] [--out FILE.png]

e.g. seed 003's comparison (MLP 2-10-5-1 relu on moons, full-batch SGD, lr 0.1, 2000 epochs):

    .venv/bin/python scripts/compare_backends.py data=moons model.hidden=[10,5] \
        optimizer=sgd optimizer.lr=0.1 data.batch_size=null trainer.max_epochs=2000

All start from the same initial weights and see the same batches. Prints the final
losses and metrics side by side with the largest relative gap between the train/loss curves,
logs the overlay figure to each run, and exits 1 if the curves differ by more than 1e-6
relative at float64 (the default here; with trainer.precision=32 the check is 1e-3). A backend
whose extra is not installed is left out, with a note.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from nnlab import backends
from nnlab.config.check import check_config
from nnlab.config.rules import ConfigError
from nnlab.paths import CONF_DIR


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--out", type=Path, help="also save the overlay figure here")
    args = parser.parse_args()
    configs = {}
    names = []
    for name in backends.names():
        missing = backends.get(name).missing_extra()
        if missing:
            print(f"compare_backends: left out: {missing}", file=sys.stderr)
        else:
            names.append(name)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for backend in names:
            cfg = compose("train", ["trainer.precision=64", *args.overrides, f"backend={backend}"])
            try:
                check_config(cfg)
            except ConfigError as err:
                print(f"compare_backends: bad config: {err}", file=sys.stderr)
                return 2
            configs[backend] = cfg

    from nnlab.plots.sweep_figures import overlaid_curves_figure
    from nnlab.tracking.store.client import get_client
    from nnlab.tracking.store.queries import metric_history
    from nnlab.training.run import run_training

    results = {b: run_training(cfg, args.overrides) for b, cfg in configs.items()}
    client = get_client(results["torch"].tracking_uri)
    histories = {
        b: {k: metric_history(client, r.run_id, k) for k in ("train/loss", "val/loss")}
        for b, r in results.items()
    }
    reference = np.array([v for _, v in histories["torch"]["train/loss"]])
    gaps = {
        b: float(
            np.max(
                np.abs(np.array([v for _, v in h["train/loss"]]) - reference)
                / np.maximum(np.abs(reference), 1e-300)
            )
        )
        for b, h in histories.items()
    }

    keys = sorted(k for k in results["torch"].metrics if k.startswith(("train/", "test/")))
    print(f"{'backend':<14}" + "".join(f"{k:>13}" for k in keys) + f"{'max rel gap':>13}")
    for b, r in results.items():
        print(f"{b:<14}" + "".join(f"{r.metrics[k]:>13.6g}" for k in keys) + f"{gaps[b]:>13.2e}")

    cfg = configs["torch"]
    fig = overlaid_curves_figure(
        histories,
        ["train/loss", "val/loss"],
        title=f"{cfg.data.name} {list(cfg.model.hidden)} "
        f"{cfg.model.activation}: {', '.join(names)} (one init)",
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "backend_comparison.png"
        fig.savefig(path, dpi=90)
        for r in results.values():
            client.log_artifact(r.run_id, str(path), "plots")
    if args.out:
        fig.savefig(args.out, dpi=90)
        print(f"figure: {args.out}")
    print("runs: " + ", ".join(f"{b}={r.run_id}" for b, r in results.items()))
    tolerance = 1e-6 if cfg.trainer.precision == 64 else 1e-3
    if max(gaps.values()) > tolerance:
        print(
            f"backends disagree: max relative gap {max(gaps.values()):.2e} > {tolerance:g}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
