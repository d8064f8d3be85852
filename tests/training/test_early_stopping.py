"""`trainer.early_stopping`: a run stops where the rule, computed by hand on its own logged
curve, says it should, and keeps (and reports) its best epoch."""

import pytest
import torch
from mlflow.tracking import MlflowClient

from nnlab.config.check import check_config
from nnlab.config.rules import ConfigError
from nnlab.training.run import run_training
from tests.conftest import compose_config

SMALL = ["data.n_samples=300", "trainer.progress=none", "tracking.log_model=false"]


def expected_stop(curve: list[float], patience: int, min_delta: float) -> tuple[int, int]:
    """(epoch it stops after, best epoch) for a minimised objective, by the documented rule."""
    best, best_epoch, stalled = curve[0], 0, 0
    for epoch, value in enumerate(curve[1:], start=1):
        if value < best - min_delta:
            best, best_epoch, stalled = value, epoch, 0
        else:
            stalled += 1
            if stalled >= patience:
                return epoch, best_epoch
    return len(curve) - 1, best_epoch


def val_curve(store, run_id, key="val/loss") -> list[float]:
    return [m.value for m in MlflowClient(store).get_metric_history(run_id, key)]


@pytest.mark.parametrize(
    "lr, patience, min_delta",
    [(1e-9, 3, 1e-3), (0.5, 4, 0.002)],
    ids=["flat-curve", "learning-curve"],
)
def test_the_run_stops_where_the_rule_says_and_keeps_the_best_epoch(store, lr, patience, min_delta):
    cfg = compose_config(
        "data=moons",
        "optimizer=sgd",
        f"optimizer.lr={lr}",
        "trainer.max_epochs=200",
        f"trainer.early_stopping.patience={patience}",
        f"trainer.early_stopping.min_delta={min_delta}",
        "trainer.precision=64",
        *SMALL,
        shrink=False,
    )
    result = run_training(cfg)
    curve = val_curve(store, result.run_id)
    # The full, uninterrupted curve of the same run, to compute the rule on.
    full = run_training(compose_config(*_without_stopping(cfg), shrink=False))
    full_curve = val_curve(store, full.run_id)
    stop, best_epoch = expected_stop(full_curve, patience, min_delta)
    assert stop < 199  # it does stop early in both cases
    assert len(curve) == stop + 1 and curve == full_curve[: stop + 1]

    run = MlflowClient(store).get_run(result.run_id)
    assert run.data.tags["nnlab.best_epoch"] == str(best_epoch)
    assert run.data.tags["nnlab.stopped_early"].startswith(f"stopped after epoch {stop}: ")
    assert run.data.metrics["best/val/loss"] == full_curve[best_epoch]
    assert result.objective == full_curve[best_epoch]
    # The network holds the best epoch's weights: its val loss is the best epoch's.
    x_val = torch.as_tensor(result.splits.x_val)
    y_val = torch.as_tensor(result.splits.y_val, dtype=torch.float64).reshape(-1, 1)
    kept = result.module.evaluate_split(x_val, y_val, "val")["val/loss"]
    assert kept == pytest.approx(full_curve[best_epoch], rel=1e-12)


def _without_stopping(cfg) -> list[str]:
    return [
        "data=moons",
        "optimizer=sgd",
        f"optimizer.lr={cfg.optimizer.lr}",
        "trainer.max_epochs=200",
        "trainer.precision=64",
        *SMALL,
    ]


def test_early_stopping_on_a_test_metric_is_refused_in_one_line():
    cfg = compose_config("trainer.early_stopping.patience=3", "objective=test/loss")
    with pytest.raises(ConfigError, match=r"^objective=test/loss: trainer.early_stopping"):
        check_config(cfg)
