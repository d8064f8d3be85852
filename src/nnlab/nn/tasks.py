"""The three tasks and their metrics, with no torch: config checks, reports and the sweep
summary read them without loading the training stack.

A metric is one row of METRICS: its name, how it is computed, and whether higher is better.
Every metric is computed in float64 from counts and sums over a whole split, so an accuracy
of 9 in 10 is stored as 0.9, not as float32's 0.8999999761581421. A metric that is undefined
on a split (AUROC with one class present, R^2 of a constant target) computes to None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nnlab.data.datasets import BINARY, MULTICLASS, REGRESSION

# Metric keys, in one place. Per epoch: TRAIN_LOSS, VAL_LOSS and the val/ headline metric;
# after test the test/ ones. Every tracker, plot and report reads these constants.
TRAIN_LOSS = "train/loss"
VAL_LOSS = "val/loss"
TEST_LOSS = "test/loss"


@dataclass(frozen=True)
class Metric:
    name: str
    # (raw outputs as float64: logits or predictions, targets) -> value, or None if undefined
    compute: Callable[[np.ndarray, np.ndarray], float | None]
    higher_is_better: bool
    undefined_when: str = ""  # why compute may return None, for the warning


def _binary_predictions(out: np.ndarray) -> np.ndarray:
    return (out.ravel() > 0).astype(np.int64)  # logit > 0 <=> probability > 0.5


def _accuracy(predicted: np.ndarray, y: np.ndarray) -> float:
    return int((predicted == y.ravel()).sum()) / len(y)


def _auroc(out: np.ndarray, y: np.ndarray) -> float | None:
    """Mann-Whitney U over the logits, ties sharing their average rank (as scikit-learn)."""
    scores, y = out.ravel(), y.ravel().astype(np.int64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based
    ranks = average_rank[inverse]
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _f1_macro(out: np.ndarray, y: np.ndarray) -> float:
    """F1 per class, averaged over the classes present in the targets or the predictions."""
    predicted, y = out.argmax(axis=1), y.ravel()
    scores = []
    for c in np.union1d(predicted, y):
        tp = int(((predicted == c) & (y == c)).sum())
        fp = int(((predicted == c) & (y != c)).sum())
        fn = int(((predicted != c) & (y == c)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(sum(scores) / len(scores))


def _r2(out: np.ndarray, y: np.ndarray) -> float | None:
    out, y = out.ravel(), y.ravel()
    total = float(((y - y.mean()) ** 2).sum())
    if len(y) < 2 or total == 0.0:
        return None
    return 1.0 - float(((y - out) ** 2).sum()) / total


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("loss", lambda out, y: None, higher_is_better=False),  # computed by the backend
        Metric(
            "acc",
            lambda out, y: _accuracy(
                out.argmax(axis=1) if out.shape[1] > 1 else _binary_predictions(out), y
            ),
            higher_is_better=True,
        ),
        Metric("auroc", _auroc, True, "the split holds one class only"),
        Metric("f1_macro", _f1_macro, higher_is_better=True),
        Metric("mse", lambda out, y: float(((out.ravel() - y.ravel()) ** 2).mean()), False),
        Metric("mae", lambda out, y: float(np.abs(out.ravel() - y.ravel()).mean()), False),
        Metric("r2", _r2, True, "the targets are all equal, or fewer than 2"),
    ]
}


@dataclass(frozen=True)
class Task:
    name: str
    default_loss: str
    losses: tuple[str, ...]
    metrics: tuple[str, ...]  # names in METRICS computed on val and test, besides the loss
    headline: str  # the metric that shows in run names, progress and summaries

    def metric_names(self, stage: str) -> tuple[str, ...]:
        """Validation runs every epoch and reports the headline metric; test reports all."""
        return (self.headline,) if stage == "val" else self.metrics

    def keys(self, stage: str) -> list[str]:
        """Every metric key logged for `stage` ('val' or 'test')."""
        return [f"{stage}/loss"] + [f"{stage}/{m}" for m in self.metric_names(stage)]

    def resolve_loss(self, configured: str) -> str:
        return self.default_loss if configured == "auto" else configured


TASKS: dict[str, Task] = {
    REGRESSION: Task(
        REGRESSION, "mse", ("mse", "half_mse", "l1", "huber"), ("mse", "mae", "r2"), "r2"
    ),
    BINARY: Task(BINARY, "bce", ("bce",), ("acc", "auroc"), "acc"),
    MULTICLASS: Task(MULTICLASS, "cross_entropy", ("cross_entropy",), ("acc", "f1_macro"), "acc"),
}

ALL_METRIC_KEYS = sorted(
    {TRAIN_LOSS} | {k for t in TASKS.values() for s in ("val", "test") for k in t.keys(s)}
)


def higher_is_better(key: str) -> bool:
    """Whether metric `key` ('val/acc', 'test/loss', ...) is maximised. Read from the metric's
    own row: a metric without one raises KeyError rather than be ranked the wrong way."""
    return METRICS[key.rsplit("/", 1)[-1]].higher_is_better
