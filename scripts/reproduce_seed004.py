#!/usr/bin/env python
"""Seed 004 (a PyTorch learning notebook): the SimpleNN examples and its catalogue of loss
functions and optimizers, on the tasks they apply to.

    .venv/bin/python scripts/reproduce_seed004.py [--quick] [--out DIR] [--workers 2]

Runs: SimpleNN 3-5-1 (ReLU, MSELoss, SGD lr 0.01) on the 3-variable regression data;
SimpleNeuralNet 10-5-3 (ReLU, CrossEntropyLoss, Adam lr 0.001, Xavier init) on 10-feature
3-class data; then sweeps: every regression loss of the catalogue (MSE, half-MSE, L1,
SmoothL1/Huber) x every optimizer (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, ASGD),
compared on validation R^2 (comparable across losses), and every optimizer on the classifier.
Catalogue entries that do not apply to these tasks are listed, not run: BCELoss /
BCEWithLogitsLoss (binary tasks: nnlab's binary loss is BCE on logits), NLLLoss (with
LogSoftmax it is CrossEntropyLoss, the same numbers), HingeEmbeddingLoss, MarginRankingLoss,
KLDivLoss (margins, rankings and distributions, not these targets), and LBFGS (needs a
closure that re-evaluates the loss; not an nnlab optimizer).
"""

import math
import sys

from nnlab.plots.run_figures import curves_figure
from nnlab.seed_scripts.harness import Reproduction, parse_args

REGRESSION = "experiment=seed004_simple_regression"
CLASSIFIER = "experiment=seed004_simple_classifier"
OPTIMIZERS = "sgd,adam,adamw,rmsprop,adagrad,adadelta,asgd"


def main(argv=None) -> int:
    args = parse_args(__doc__.split("\n\n")[0], argv)
    rep = Reproduction("seed004", args)
    reg = rep.train(REGRESSION)
    clf = rep.train(CLASSIFIER)
    rep.expect("SimpleNN 3-5-1 MSE/SGD test R^2", reg.metrics["test/r2"], ">=", 0.5)
    rep.expect(
        "SimpleNeuralNet 10-5-3 CE/Adam test accuracy",
        clf.metrics["test/acc"],
        ">=",
        0.6,
        "chance is 1/3",
    )
    rep.figure("simple_regression_curves.png", curves_figure(rep.history(reg), "r2", reg.run_name))
    rep.figure("simple_classifier_curves.png", curves_figure(rep.history(clf), "acc", clf.run_name))

    losses = rep.sweep(
        REGRESSION,
        "model.loss=mse,half_mse,l1,huber",
        f"optimizer={OPTIMIZERS}",
        "objective=val/r2",
    )
    finished = [r for r in losses if r.status == "FINISHED"]
    rep.expect(
        "loss x optimizer sweep: jobs finished",
        len(finished),
        ">=",
        28,
        "28 combinations",
        needs_training=False,
    )
    best = max(finished, key=lambda r: r.metrics.get("val/r2", -math.inf))
    rep.expect(
        f"best loss x optimizer test R^2 ({best.overrides['model.loss']}, "
        f"{best.overrides['optimizer']})",
        best.metrics["test/r2"],
        ">=",
        0.8,
    )
    for r in sorted(finished, key=lambda r: -r.metrics.get("val/r2", -math.inf))[:5]:
        rep.note(
            f"loss {r.overrides['model.loss']:<8} optimizer {r.overrides['optimizer']:<8}"
            f" val/r2 {r.metrics['val/r2']:.4f} test/r2 {r.metrics['test/r2']:.3f}"
        )

    optim = rep.sweep(CLASSIFIER, f"optimizer={OPTIMIZERS}")
    for r in sorted(optim, key=lambda r: -r.metrics.get("test/acc", 0)):
        rep.note(
            f"classifier with {r.overrides['optimizer']:<8}: test acc "
            f"{r.metrics.get('test/acc', float('nan')):.3f}"
        )
    rep.expect(
        "classifier: best optimizer test accuracy",
        max(r.metrics.get("test/acc", 0) for r in optim),
        ">=",
        0.7,
    )
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
