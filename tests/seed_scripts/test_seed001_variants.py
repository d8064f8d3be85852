"""Seed 001's TensorFlow and JAX notebooks (scripts/seed001_variants.py): each follows the
numpy backend's curve from nnlab's initial weights, and is logged as a run of its own."""

import argparse
import sys

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from nnlab.paths import PROJECT_ROOT
from nnlab.seed_scripts.harness import Reproduction
from nnlab.training.run import run_training
from tests.conftest import backend_params, compose_config

sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
from reproduce_seed001 import problem  # noqa: E402
from seed001_variants import VARIANTS  # noqa: E402

SMALL = [
    "experiment=seed001_nonlinear3d",
    "data.n_samples=200",
    "trainer.max_epochs=4",
    "trainer.progress=none",
    "tracking.log_model=false",
    "tracking.log_plots=false",
]


def curve(store, run_id, key):
    return [m.value for m in MlflowClient(store).get_metric_history(run_id, key)]


# Each variant needs both frameworks' extras only through its own import; tensorflow's
# param stands for all four TensorFlow variants.
@pytest.mark.parametrize("framework", backend_params(["tensorflow", "jax"]))
@pytest.mark.parametrize("batch", ["32", "null"], ids=["minibatch", "fullbatch"])
def test_every_variant_follows_the_numpy_backend(store, framework, batch):
    cfg = compose_config(*SMALL, "backend=numpy", f"data.batch_size={batch}", shrink=False)
    reference = run_training(cfg)
    the_problem = problem(cfg)
    variants = {k: v for k, v in VARIANTS.items() if (framework == "jax") == k.startswith("jax")}
    assert len(variants) == (1 if framework == "jax" else 4)
    for label, train in variants.items():
        history, params = train(the_problem)
        for key in ("train/loss", "val/loss"):
            np.testing.assert_allclose(
                history[key], curve(store, reference.run_id, key), rtol=1e-9, err_msg=label
            )
        assert [w.shape for w, _ in params] == [(3, 32), (32, 16), (16, 1)]


@pytest.mark.parametrize("framework", backend_params(["jax"]))
def test_a_variant_is_logged_like_a_run(store, framework):
    cfg = compose_config(*SMALL, "backend=numpy", shrink=False)
    reference = run_training(cfg)
    rep = Reproduction("nnlab", argparse.Namespace(quick=True, out=None))
    history, params = VARIANTS["jax notebook (jit, grad)"](problem(cfg))
    result = rep.log_trained_elsewhere("jax notebook", cfg, reference.splits, history, params)
    client = MlflowClient(store)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.params["variant"] == "jax notebook"
    assert curve(store, result.run_id, "train/loss") == history["train/loss"]
    # Same weights as the numpy run's, so the same test metrics.
    assert run.data.metrics["test/r2"] == pytest.approx(reference.metrics["test/r2"], rel=1e-9)
    assert [m.step for m in client.get_metric_history(result.run_id, "test/r2")] == [0]
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert plots == {"plots/curves.png", "plots/predictions.png"}
