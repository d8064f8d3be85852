"""In-process training runs against a temporary store: learning, determinism, precision."""

import math

import pytest
import torch
from mlflow.tracking import MlflowClient

from nnlab.training.run import run_training
from tests.conftest import compose_config

FAST = ["tracking.log_plots=false", "tracking.log_model=false"]


@pytest.mark.parametrize(
    "overrides, metric, threshold",
    [
        (["data=moons", "data.n_samples=400", "trainer.max_epochs=40"], "test/acc", 0.9),
        (
            ["data=blobs", "data.noise=0.5", "data.n_samples=400", "trainer.max_epochs=30"],
            "test/acc",
            0.9,
        ),
        (
            ["data=iris", "data.n_samples=null", "data.batch_size=16", "trainer.max_epochs=60"],
            "test/acc",
            0.85,
        ),
        (
            ["data=sine", "data.n_samples=400", "trainer.max_epochs=80", "model.hidden=[16,16]"],
            "test/r2",
            0.9,
        ),
    ],
    ids=["binary-moons", "multiclass-blobs", "multiclass-iris", "regression-sine"],
)
def test_each_task_learns_an_easy_dataset(store, overrides, metric, threshold):
    result = run_training(compose_config(*overrides, *FAST))
    assert result.metrics[metric] >= threshold, result.metrics
    history = MlflowClient(store).get_metric_history(result.run_id, "train/loss")
    assert history[-1].value < history[0].value  # it did learn, not just start lucky


def test_same_config_and_seed_give_bit_identical_metrics(store):
    cfg = compose_config("data=moons", "data.n_samples=300", "trainer.max_epochs=5", *FAST)
    first, second = run_training(cfg), run_training(cfg)
    client = MlflowClient(store)
    for key in ("train/loss", "val/loss", "val/acc"):
        a = [m.value for m in client.get_metric_history(first.run_id, key)]
        b = [m.value for m in client.get_metric_history(second.run_id, key)]
        assert len(a) == 5 and a == b
    assert first.metrics == second.metrics
    other = run_training(
        compose_config("data=moons", "data.n_samples=300", "trainer.max_epochs=5", "seed=7", *FAST)
    )
    assert other.metrics["val/loss"] != first.metrics["val/loss"]


def test_precision_64_trains_in_float64_and_agrees_with_32(store):
    common = ["data=sine", "data.n_samples=200", "trainer.max_epochs=5", "optimizer=sgd", *FAST]
    r32 = run_training(compose_config(*common, "trainer.precision=32"))
    r64 = run_training(compose_config(*common, "trainer.precision=64"))
    assert r32.metrics["train/loss"] != r64.metrics["train/loss"]  # really another precision
    assert math.isclose(r32.metrics["train/loss"], r64.metrics["train/loss"], rel_tol=1e-4)


def test_objective_is_the_configured_metric(store):
    """What goes back to Hydra (and any sweeper) is the configured metric's value as the store
    holds it for the last epoch, and the run says which metric it is."""
    client = MlflowClient(store)
    for objective in ("val/acc", "val/loss"):
        result = run_training(compose_config(f"objective={objective}", *FAST))
        history = client.get_metric_history(result.run_id, objective)
        assert result.objective == max(history, key=lambda m: m.step).value
        assert client.get_run(result.run_id).data.tags["nnlab.objective"] == objective
    assert result.objective != result.metrics["val/acc"]  # the two really differ


def test_diverging_run_fails_and_keeps_its_metrics(store):
    cfg = compose_config(
        "data=sine", "optimizer=sgd", "optimizer.lr=1e8", "trainer.max_epochs=20", *FAST
    )
    with pytest.raises(RuntimeError, match="train/loss is (nan|inf)"):
        run_training(cfg)
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("nnlab").experiment_id])
    assert run.info.status == "FAILED"
    assert "TrainingDiverged" in run.data.tags["nnlab.error"]
    curve = [m.value for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert curve and not math.isfinite(curve[-1])  # the store shows where it diverged


def test_l1_penalty_shrinks_weights(store):
    def total_abs_weight(l1):
        result = run_training(
            compose_config("data=sine", "trainer.max_epochs=20", f"model.l1={l1}", *FAST)
        )
        return sum(float(w.detach().abs().sum()) for w in result.module.net.weight_matrices())

    assert total_abs_weight(0.01) < 0.8 * total_abs_weight(0.0)


def test_data_are_float64_tensors_at_precision_64():
    from nnlab.data.splits import make_splits
    from nnlab.training.population_data import population_data

    splits = make_splits(compose_config("data=moons").data, seed=0)
    data = population_data([splits], [0], torch.float64)
    x, y = data.epoch(0, shuffle=True)
    assert x.dtype == torch.float64 and y.dtype == torch.float64
    assert y.shape == (1, len(splits.y_train), 1)  # members, rows, one target column
