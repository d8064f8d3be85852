"""The from-scratch ladder: every backend (numpy, torch_scratch, torch, jax, tensorflow) starts
from the same weights and, with plain SGD in float64 on the same batches, follows the same
curve."""

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from nnlab import backends
from nnlab.config.check import check_config
from nnlab.config.rules import ConfigError
from nnlab.paths import CONF_DIR
from nnlab.training.run import run_training
from tests.conftest import backend_params, compose_config

BACKENDS = backends.names()
ENGINES = [b for b in BACKENDS if b not in ("torch", "torch_scratch")]  # not autograd
FAST = ["tracking.log_plots=false", "tracking.log_model=false", "trainer.progress=none"]


def curve(store, run_id, key="train/loss"):
    return np.array([m.value for m in MlflowClient(store).get_metric_history(run_id, key)])


_reference_curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}


def agreement_run(store, data: str, batch: str, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """(train/loss, val/loss) per epoch: 100 epochs of plain SGD in float64."""
    cfg = compose_config(
        f"data={data}",
        "data.n_samples=200",
        f"data.batch_size={batch}",
        "optimizer=sgd",
        "optimizer.lr=0.1",
        "optimizer.momentum=0.0",
        "trainer.precision=64",
        "trainer.max_epochs=100",
        f"backend={backend}",
        *FAST,
        shrink=False,
    )
    run_id = run_training(cfg).run_id
    return curve(store, run_id), curve(store, run_id, "val/loss")


@pytest.mark.parametrize("backend", backend_params([b for b in BACKENDS if b != "torch"]))
@pytest.mark.parametrize(
    "data", ["moons", "blobs", "sine"], ids=["binary", "multiclass", "regression"]
)
@pytest.mark.parametrize("batch", ["32", "null"], ids=["minibatch", "fullbatch"])
def test_backends_follow_the_same_curve_for_100_epochs(store, data, batch, backend):
    """Against the torch backend's curves (trained once per task and batch in each worker)."""
    if (data, batch) not in _reference_curves:
        _reference_curves[data, batch] = agreement_run(store, data, batch, "torch")
    reference_train, reference_val = _reference_curves[data, batch]
    assert len(reference_train) == 100 and reference_train[-1] < reference_train[0]
    train, val = agreement_run(store, data, batch, backend)
    np.testing.assert_allclose(train, reference_train, rtol=1e-9)
    np.testing.assert_allclose(val, reference_val, rtol=1e-9)


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
        curve(store, numpy_run.run_id), curve(store, torch_run.run_id), rtol=1e-9
    )
    run = MlflowClient(store).get_run(numpy_run.run_id)
    assert run.data.params["backend"] == "numpy"


@pytest.mark.parametrize("backend", backend_params([b for b in ENGINES if b != "numpy"]))
def test_jax_and_tensorflow_train_with_adam_weight_decay_and_l1(store, backend):
    """The optimizer side is the numpy backend's (tested above with every optimizer); here the
    other engines' gradients go through Adam, weight decay and the L1 term, and the
    uncompiled path (jit=false) computes the same."""
    common = [
        "data=blobs",
        "data.n_samples=200",
        "trainer.max_epochs=4",
        "optimizer=adamw",
        "model.l1=0.001",
        "model.activation=gelu",
        "trainer.precision=64",
        *FAST,
    ]
    torch_run = run_training(compose_config(*common, "backend=torch", shrink=False))
    for jit in ("true", "false"):
        cfg = compose_config(*common, f"backend={backend}", f"backend.jit={jit}", shrink=False)
        run = run_training(cfg)
        np.testing.assert_allclose(
            curve(store, run.run_id), curve(store, torch_run.run_id), rtol=1e-9, err_msg=jit
        )
    assert MlflowClient(store).get_run(run.run_id).data.params["backend"] == backend


def test_numpy_backend_logs_the_same_keys_and_artifacts(store):
    result = run_training(compose_config("backend=numpy", "data=sine"))
    client = MlflowClient(store)
    names = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert names == {"plots/curves.png", "plots/predictions.png"}
    assert {"train/loss", "val/loss", "val/r2", "test/r2", "test/mse"} <= set(result.metrics)


def test_numpy_backend_refuses_an_accelerator_before_any_run():
    cfg = compose_config("backend=numpy", "trainer.accelerator=gpu")
    with pytest.raises(
        ConfigError, match=r"^trainer.accelerator=gpu: the numpy backend supports: cpu$"
    ):
        check_config(cfg)
