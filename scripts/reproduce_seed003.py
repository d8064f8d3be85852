#!/usr/bin/env python
"""Seed 003 ("Lecture 5: from linear models to neural networks").

    .venv/bin/python scripts/reproduce_seed003.py [--quick] [--out DIR] [--workers 2]

Runs: logistic regression (model.hidden=[]) against the MLP 2-10-5-1 ReLU on moons and the
MLP 2-20-10-1 tanh on circles (full-batch gradient descent, lr 0.1, 2000 epochs); the moons
MLP from scratch (numpy backend) beside PyTorch; the softmax MLP 4-10-8-3 on iris; and the
exercises as sweeps on moons: architectures [2,5,1] [2,10,5,1] [2,20,10,5,1], activations
relu/tanh/sigmoid, learning rates 0.001/0.01/0.1/1.0, L2 strengths.
Figures: activation functions and their derivatives, decision boundaries (linear vs MLP),
loss and accuracy curves, weights before and after training.
"""

import sys

import numpy as np
from matplotlib.figure import Figure

from nnlab.plots import (
    activation_functions_figure,
    curves_figure,
    decision_boundary_figure,
    weights_figure,
)
from nnlab.run import probabilities
from nnlab.scratch import ACTIVATIONS, init_params
from nnlab.seed_harness import Reproduction, parse_args
from nnlab.store.names import ERROR_TAG

MOONS, CIRCLES = "experiment=seed003_moons", "experiment=seed003_circles"


def main(argv=None) -> int:
    args = parse_args(__doc__.split("\n\n")[0], argv)
    rep = Reproduction("seed003", args)

    moons_linear = rep.train(MOONS, "model.hidden=[]")
    moons_mlp = rep.train(MOONS)
    moons_numpy = rep.train(MOONS, "backend=numpy")
    circles_linear = rep.train(CIRCLES, "model.hidden=[]")
    circles_mlp = rep.train(CIRCLES)
    iris = rep.train("experiment=seed003_iris")

    acc = lambda r: r.metrics["test/acc"]  # noqa: E731
    rep.expect(
        "moons: MLP 2-10-5-1 test accuracy",
        acc(moons_mlp),
        ">=",
        0.9,
        "non-linear boundary succeeds",
    )
    rep.expect(
        "moons: MLP minus logistic regression accuracy",
        acc(moons_mlp) - acc(moons_linear),
        ">=",
        0.05,
        "linear model falls short",
    )
    rep.expect(
        "circles: logistic regression test accuracy",
        acc(circles_linear),
        "<=",
        0.65,
        "linear model should fail (chance is 0.5)",
    )
    rep.expect(
        "circles: MLP 2-20-10-1 tanh test accuracy",
        acc(circles_mlp),
        ">=",
        0.95,
        "neural network should succeed",
    )
    rep.expect(
        "moons: scratch (numpy) vs PyTorch final train/loss",
        moons_numpy.metrics["train/loss"],
        "~",
        moons_mlp.metrics["train/loss"],
        "from-scratch matches PyTorch",
        tolerance=1e-4,
        needs_training=False,
    )
    rep.expect(
        "moons: scratch (numpy) vs PyTorch test accuracy",
        acc(moons_numpy),
        "~",
        acc(moons_mlp),
        "",
        tolerance=1e-9,
        needs_training=False,
    )
    rep.expect("iris: softmax MLP 4-10-8-3 test accuracy", acc(iris), ">=", 0.85)

    _exercises(rep)

    rep.figure(
        "activations.png",
        activation_functions_figure(
            {k: ACTIVATIONS[k] for k in ("relu", "tanh", "sigmoid", "leaky_relu")}
        ),
    )
    rep.figure(
        "decision_boundaries_linear_vs_mlp.png",
        _boundaries(
            [
                ("moons: logistic regression", moons_linear),
                ("moons: MLP 2-10-5-1 relu", moons_mlp),
                ("circles: logistic regression", circles_linear),
                ("circles: MLP 2-20-10-1 tanh", circles_mlp),
            ]
        ),
    )
    rep.figure(
        "moons_mlp_curves.png",
        curves_figure(rep.history(moons_mlp), "acc", "moons MLP: loss and accuracy"),
    )
    rep.figure("iris_curves.png", curves_figure(rep.history(iris), "acc", "iris 4-10-8-3"))
    cfg = rep.config(MOONS)
    before = [w for w, _ in init_params([2, 10, 5, 1], cfg.model.init, cfg.seed)]
    after = [w.detach().double().numpy() for w in moons_mlp.module.net.weight_matrices()]
    rep.figure(
        "moons_mlp_weights.png", weights_figure(before, after, "moons MLP weights before / after")
    )
    return rep.finish()


def _exercises(rep: Reproduction) -> None:
    def by(rows, key):
        return {r.overrides[key]: r for r in rows}

    archs = by(rep.sweep(MOONS, "sweep=architectures"), "model.hidden")
    for arch, row in archs.items():
        rep.note(f"architecture {arch}: test acc {row.metrics.get('test/acc', float('nan')):.3f}")
    rep.expect(
        "architectures: best test accuracy",
        max(r.metrics["test/acc"] for r in archs.values()),
        ">=",
        0.95,
    )

    acts = by(rep.sweep(MOONS, "model.activation=relu,tanh,sigmoid"), "model.activation")
    for name in ("relu", "tanh"):
        rep.expect(f"activation {name}: test accuracy", acts[name].metrics["test/acc"], ">=", 0.9)
    rep.note(
        f"sigmoid reaches test acc {acts['sigmoid'].metrics['test/acc']:.3f} and train "
        f"loss {acts['sigmoid'].metrics['train/loss']:.3f} (relu: "
        f"{acts['relu'].metrics['train/loss']:.3f}): saturating units learn slower"
    )

    lrs = by(rep.sweep(MOONS, "sweep=learning_rates"), "optimizer.lr")
    loss = {lr: r.metrics.get("train/loss", float("nan")) for lr, r in lrs.items()}
    rep.expect(
        "lr 0.001 ends with a higher train loss than lr 0.1 (too slow)",
        loss["0.001"],
        ">",
        loss["0.1"],
    )
    big = lrs["1.0"]
    rep.note(
        f"lr 1.0: {big.status}, final train loss {loss['1.0']:.4g}, test acc "
        f"{big.metrics.get('test/acc', float('nan')):.3f}"
        + (f" ({big.tags.get(ERROR_TAG)})" if big.status != "FINISHED" else "")
    )

    l2 = by(rep.sweep(MOONS, "sweep=l2"), "optimizer.weight_decay")
    for wd, row in sorted(l2.items(), key=lambda kv: float(kv[0])):
        rep.note(
            f"L2 {wd}: train loss {row.metrics['train/loss']:.4f}, test loss "
            f"{row.metrics['test/loss']:.4f}, test acc {row.metrics['test/acc']:.3f}"
        )
    rep.expect(
        "L2 0.1 fits the training set less tightly than no L2 (train loss)",
        l2["0.1"].metrics["train/loss"],
        ">",
        l2["0.0"].metrics["train/loss"],
    )


def _boundaries(panels) -> Figure:
    fig = Figure(figsize=(11, 10), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, (title, result) in zip(axes, panels, strict=True):
        module, splits = result.module, result.splits

        def predict(x, module=module, task=result.task):
            import torch

            with torch.no_grad():
                out = module(torch.as_tensor(x, dtype=next(module.parameters()).dtype))
            return probabilities(task, out.double().numpy())

        decision_boundary_figure(
            predict,
            splits.x_test,
            splits.y_test,
            2,
            f"{title}: test acc {result.metrics['test/acc']:.2f}",
            ax=ax,
        )
    return fig


if __name__ == "__main__":
    np.seterr(over="ignore")
    sys.exit(main())
