"""Every metric is one row (name, function, direction), computed in float64 from counts and
sums: checked against scikit-learn on random inputs, with ties, and for exactness."""

import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from nnlab.nn.metrics import evaluate
from nnlab.nn.tasks import ALL_METRIC_KEYS, METRICS, TASKS, higher_is_better


@pytest.mark.parametrize("n", [2, 7, 100, 1001])
def test_binary_metrics_equal_scikit_learns(n, rng):
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]  # both classes present
    logits = np.round(rng.normal(size=(n, 1)), 1)  # rounded: many tied scores
    assert METRICS["acc"].compute(logits, y) == sk.accuracy_score(y, logits.ravel() > 0)
    assert METRICS["auroc"].compute(logits, y) == pytest.approx(
        sk.roc_auc_score(y, logits.ravel()), abs=1e-15
    )


@pytest.mark.parametrize("k", [3, 5])
def test_multiclass_metrics_equal_scikit_learns(k, rng):
    y = rng.integers(0, k, 300)
    out = rng.normal(size=(300, k))
    predicted = out.argmax(axis=1)
    assert METRICS["acc"].compute(out, y) == sk.accuracy_score(y, predicted)
    assert METRICS["f1_macro"].compute(out, y) == pytest.approx(
        sk.f1_score(y, predicted, average="macro"), abs=1e-15
    )


def test_regression_metrics_equal_scikit_learns(rng):
    y = rng.normal(size=200)
    out = (y + rng.normal(scale=0.3, size=200)).reshape(-1, 1)
    for name, reference in [
        ("mse", sk.mean_squared_error),
        ("mae", sk.mean_absolute_error),
        ("r2", sk.r2_score),
    ]:
        assert METRICS[name].compute(out, y) == pytest.approx(reference(y, out.ravel()), 1e-14)


def test_accuracy_is_exact_not_float32_noise():
    # 9 of 10 right, from float32 outputs as a precision=32 run has them.
    out = torch.tensor([[1.0]] * 9 + [[-1.0]], dtype=torch.float32)
    y = torch.ones(10, 1)
    values = evaluate(TASKS["binary"], "bce", out, y, "test")
    assert values["test/acc"] == 0.9  # not 0.8999999761581421
    assert repr(values["test/acc"]) == "0.9"


def test_every_logged_metric_has_a_row_with_its_direction():
    for key in ALL_METRIC_KEYS:
        higher_is_better(key)  # KeyError if a metric had no row
    assert not higher_is_better("val/loss") and not higher_is_better("test/mse")
    assert higher_is_better("test/auroc") and higher_is_better("val/r2")
    with pytest.raises(KeyError):
        higher_is_better("test/brier")  # a new metric must get a row, not a silent default


def test_undefined_metrics_compute_to_none():
    assert METRICS["auroc"].compute(np.ones((3, 1)), np.array([1, 1, 1])) is None
    assert METRICS["r2"].compute(np.ones((3, 1)), np.array([2.0, 2.0, 2.0])) is None
