"""The three tasks: which losses they allow, how they turn outputs into predictions, and which
metrics they report. Names only here (no torch), so config checks and reports stay light;
`nnlab.metrics` holds the torch side.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnlab.datasets import BINARY, MULTICLASS, REGRESSION

# Metric keys, in one place. Per epoch: TRAIN_LOSS, VAL_LOSS and the val/ metrics; after test
# the test/ ones. Every tracker, plot and report reads these constants.
TRAIN_LOSS = "train/loss"
VAL_LOSS = "val/loss"
TEST_LOSS = "test/loss"


@dataclass(frozen=True)
class Task:
    name: str
    default_loss: str
    losses: tuple[str, ...]
    metrics: tuple[str, ...]  # metric names computed on val and test, besides the loss
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
    """Losses and errors are minimised; accuracy, AUROC, F1 and R^2 are maximised."""
    return key.rsplit("/", 1)[-1] in ("acc", "auroc", "f1_macro", "r2")
