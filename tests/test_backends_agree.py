"""The from-scratch ladder: the numpy, torch_scratch and torch backends start from the same
weights and, with plain SGD in float64 on the same batches, follow the same curve."""

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from nnlab.config_check import ConfigError, check_config
from nnlab.paths import CONF_DIR
from nnlab.run import run_training
from tests.conftest import compose_config

BACKENDS = ["numpy", "torch_scratch", "torch"]
FAST = ["tracking.log_plots=false", "tracking.log_model=false", "trainer.progress=none"]


def curve(store, run_id, key="train/loss"):
    return np.array([m.value for m in MlflowClient(store).get_metric_history(run_id, key)])


@pytest.mark.slow
@pytest.mark.parametrize(
    "data", ["moons", "blobs", "sine"], ids=["binary", "multiclass", "regression"]
)
@pytest.mark.parametrize("batch", ["32", "null"], ids=["minibatch", "fullbatch"])
def test_backends_follow_the_same_curve_for_100_epochs(store, data, batch):
    common = [
        f"data={data}",
        "data.n_samples=200",
        f"data.batch_size={batch}",
        "optimizer=sgd",
        "optimizer.lr=0.1",
        "optimizer.momentum=0.0",
        "trainer.precision=64",
        "trainer.max_epochs=100",
        *FAST,
    ]
    runs = {
        b: run_training(compose_config(*common, f"backend={b}", shrink=False)) for b in BACKENDS
    }
    reference = curve(store, runs["torch"].run_id)
    assert len(reference) == 100 and reference[-1] < reference[0]
    for backend in ("numpy", "torch_scratch"):
        np.testing.assert_allclose(
            curve(store, runs[backend].run_id), reference, rtol=1e-6, err_msg=backend
        )
        np.testing.assert_allclose(
            curve(store, runs[backend].run_id, "val/loss"),
            curve(store, runs["torch"].run_id, "val/loss"),
            rtol=1e-6,
        )


@pytest.mark.parametrize(
    "optimizer", sorted(p.stem for p in (CONF_DIR / "optimizer").glob("*.yaml"))
)
def test_numpy_backend_trains_with_every_optimizer(store, optimizer):
    common = [
        "data=moons",
        "data.n_samples=200",
        "trainer.max_epochs=4",
        f"optimizer={optimizer}",
        "optimizer.weight_decay=0.01",
        "model.l1=0.001",
        "trainer.precision=64",
        *FAST,
    ]
    numpy_run = run_training(compose_config(*common, "backend=numpy", shrink=False))
    torch_run = run_training(compose_config(*common, "backend=torch", shrink=False))
    np.testing.assert_allclose(
        curve(store, numpy_run.run_id), curve(store, torch_run.run_id), rtol=1e-6
    )
    run = MlflowClient(store).get_run(numpy_run.run_id)
    assert run.data.params["backend"] == "numpy"


def test_numpy_backend_logs_the_same_keys_and_artifacts(store):
    result = run_training(compose_config("backend=numpy", "data=sine"))
    client = MlflowClient(store)
    names = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert names == {"plots/curves.png", "plots/predictions.png"}
    assert {"train/loss", "val/loss", "val/r2", "test/r2", "test/mse"} <= set(result.metrics)


def test_numpy_backend_refuses_an_accelerator_before_any_run():
    cfg = compose_config("backend=numpy", "trainer.accelerator=gpu")
    with pytest.raises(ConfigError, match=r"^trainer.accelerator=gpu: the numpy backend"):
        check_config(cfg)
