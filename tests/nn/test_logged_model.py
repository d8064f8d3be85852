"""The trained network is an MLflow Model that the UI links and pyfunc runs: for every
backend, `mlflow.pyfunc.load_model(uri).predict(raw features)` equals the trained module on
the standardised features. Saved as "pt2" (torch.export), which loads without unpickling."""

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from nnlab import backends
from nnlab.training.run import run_training
from tests.conftest import backend_params, compose_config


@pytest.mark.parametrize("backend", backend_params(backends.names()))
@pytest.mark.parametrize("data, precision", [("moons", 32), ("iris", 64), ("sine", 32)])
def test_logged_model_predicts_what_the_trained_module_does(store, backend, data, precision):
    overrides = [f"data={data}", f"backend={backend}", f"trainer.precision={precision}"]
    if data == "iris":
        overrides.append("data.n_samples=null")
    cfg = compose_config(
        *overrides,
        "tracking.log_model=true",
        "tracking.log_plots=false",
        "trainer.checkpoint_every_s=0.001",
    )
    result = run_training(cfg)
    run = MlflowClient(store).get_run(result.run_id)
    (output,) = run.outputs.model_outputs  # the Models column links this
    # The run's page lists the models of the run's own experiment, stored beside its store.
    logged = MlflowClient(store).get_logged_model(output.model_id)
    assert logged.experiment_id == run.info.experiment_id
    store_dir = Path(store.removeprefix("sqlite:///")).parent
    assert logged.artifact_location.removeprefix("file://").startswith(str(store_dir))
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(f"models:/{output.model_id}")
    saved = Path(mlflow.artifacts.download_artifacts(f"models:/{output.model_id}"))
    assert (saved / "data" / "model.pt2").exists()  # torch.export's graph, not a pickle
    assert not list(saved.rglob("*.pth")) and not list(saved.rglob("*.pkl"))
    assert model.metadata.signature is not None and model.metadata.saved_input_example_info
    # What it needs to run: the torch it was saved with, and MLflow.
    requirements = (saved / "requirements.txt").read_text().split()
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements
    assert any(r.startswith("mlflow==") for r in requirements)

    splits = result.splits
    dtype = torch.float32 if precision == 32 else torch.float64
    raw = (splits.x_test * splits.scale + splits.mean).astype(
        np.float32 if precision == 32 else np.float64
    )
    with torch.no_grad():
        expected = result.module(torch.as_tensor(splits.x_test, dtype=dtype)).double().numpy()
    predicted = np.asarray(model.predict(raw), dtype=np.float64)
    tolerance = 1e-5 if precision == 32 else 1e-12  # standardising again rounds in float32
    np.testing.assert_allclose(predicted, expected, rtol=tolerance, atol=tolerance)

    # The final checkpoint stays (for resume= and inspection); no stale periodic one beside it.
    files = {a.path for a in MlflowClient(store).list_artifacts(result.run_id, "checkpoints")}
    assert files == {"checkpoints/model.ckpt"}


def test_each_member_of_a_population_logs_a_model_of_its_own_weights(store):
    """The members' models are traced once (nnlab.nn.export.one_export_per_shape) and saved
    with each member's own weights and standardisation: member k's model predicts what member
    k computes, and the members' predictions differ."""
    from nnlab.training.repeats import run_group

    cfg = compose_config(
        "repeats=3", "tracking.log_model=true", "tracking.log_plots=false", shrink=False
    )
    group = run_group(cfg, [], {})
    mlflow.set_tracking_uri(store)
    predictions = []
    for member in group.members:
        (output,) = MlflowClient(store).get_run(member.run_id).outputs.model_outputs
        model = mlflow.pyfunc.load_model(f"models:/{output.model_id}")
        splits = member.splits
        raw = (splits.x_test * splits.scale + splits.mean).astype(np.float32)
        with torch.no_grad():
            x = torch.as_tensor(splits.x_test, dtype=torch.float32)
            expected = member.module(x).double().numpy()
        predicted = np.asarray(model.predict(raw), dtype=np.float64)
        np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-5)
        predictions.append(predicted)
    assert not np.allclose(predictions[0], predictions[1])
