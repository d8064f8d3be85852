#!/usr/bin/env python
"""Seed 001/002 ("Assignment 05"): a three-layer network for non-linear regression on an
equation of three variables, built from scratch in NumPy, in PyTorch without layers (einsum)
and with PyTorch modules, all three trained by Lightning.

    .venv/bin/python scripts/reproduce_seed001.py [--quick] [--out DIR]

Artifacts the assignment asks for: train/val loss curves (each run's plots/curves.png and an
overlay of the three backends), predictions vs ground truth with the 4-D plot (inputs on
three axes, colour for y), and convergence (the loss curve on a log axis).
Expectations: the three backends reach the same loss (1e-6 relative, float64, same init and
batches); test R^2 above 0.95 (the assignment states no number).
"""

import sys

from nnlab.plots import overlaid_curves_figure
from nnlab.run import run_figures
from nnlab.seed_harness import Reproduction, parse_args

BACKENDS = ("numpy", "torch_scratch", "torch")


def main(argv=None) -> int:
    args = parse_args(__doc__.split("\n\n")[0], argv)
    rep = Reproduction("seed001", args)
    runs = {b: rep.train("experiment=seed001_nonlinear3d", f"backend={b}") for b in BACKENDS}
    reference = runs["torch"].metrics
    for b in ("numpy", "torch_scratch"):
        for key in ("train/loss", "val/loss", "test/loss"):
            rep.expect(
                f"{b} {key} vs torch",
                runs[b].metrics[key],
                "~",
                reference[key],
                "same network, three ways",
                tolerance=1e-6,
                needs_training=False,
            )
    for b in BACKENDS:
        rep.expect(f"{b} test R^2", runs[b].metrics["test/r2"], ">=", 0.95)

    rep.figure(
        "backends_loss_overlay.png",
        overlaid_curves_figure(
            {b: rep.history(r, ["train/loss", "val/loss"]) for b, r in runs.items()},
            ["train/loss", "val/loss"],
            "nonlinear3d: numpy vs torch_scratch vs torch",
        ),
    )
    torch_run = runs["torch"]
    figures = run_figures(
        rep.config("experiment=seed001_nonlinear3d"),
        torch_run.module,
        torch_run.splits,
        torch_run.task,
        rep.history(torch_run),
    )
    rep.figure("predictions_4d.png", figures["predictions.png"])
    rep.figure("curves.png", figures["curves.png"])
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
