"""The trained network is an MLflow Model that the UI links, pyfunc runs and `mlflow models
serve` serves: for every backend, its raw output on raw features equals the trained module on
the standardised features; by default it answers named columns with class labels (the CSV's
own text) or a regression's prediction in the target's units, and per-class probabilities on
request. Traced by torch.export and served from code: it loads without unpickling."""

import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from nnlab import backends
from nnlab.training.run import run_training
from tests.conftest import assert_model_records_what_mlflow_would, backend_params, compose_config


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
    assert_model_records_what_mlflow_would(MlflowClient(store), result.run_id)
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
    assert (saved / "artifacts" / "model.pt2").exists()  # torch.export's graph, not a pickle
    assert not list(saved.rglob("*.pth")) and not list(saved.rglob("*.pkl"))
    signature = model.metadata.signature
    names = [c.name for c in signature.inputs.inputs]
    assert names == [f"x{i + 1}" for i in range(result.splits.n_features)]
    assert signature.params.params[0].name == "output"
    # What it needs to run: the torch it was saved with, and MLflow.
    requirements = (saved / "requirements.txt").read_text().split()
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements
    assert any(r.startswith("pandas==") for r in requirements)
    assert any(r.startswith("mlflow==") for r in requirements)

    splits = result.splits
    dtype = torch.float32 if precision == 32 else torch.float64
    raw = (splits.x_test * splits.scale + splits.mean).astype(
        np.float32 if precision == 32 else np.float64
    )
    with torch.no_grad():
        expected = result.module(torch.as_tensor(splits.x_test, dtype=dtype)).double().numpy()
    request = pd.DataFrame(raw.astype(np.float64), columns=names)  # float32 values, exactly
    predicted = np.asarray(model.predict(request, params={"output": "raw"}), dtype=np.float64)
    tolerance = 1e-5 if precision == 32 else 1e-12  # standardising again rounds in float32
    np.testing.assert_allclose(predicted, expected, rtol=tolerance, atol=tolerance)

    # The final checkpoint stays (for resume= and inspection); no stale periodic one beside it.
    files = {a.path for a in MlflowClient(store).list_artifacts(result.run_id, "checkpoints")}
    assert files == {"checkpoints/model.ckpt"}


def test_each_member_of_a_population_logs_a_model_of_its_own_weights(store, monkeypatch):
    """The members' models are traced once (nnlab.nn.export.one_export_per_shape) and saved
    with each member's own weights and standardisation: member k's model predicts what member
    k computes, and the members' predictions differ."""
    from nnlab.training.repeats import run_group

    real, traces = torch.export.export, []

    def counted(*args, **kwargs):  # the real trace, counted
        traces.append(None)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.export, "export", counted)
    cfg = compose_config(
        "repeats=3", "tracking.log_model=true", "tracking.log_plots=false", shrink=False
    )
    group = run_group(cfg, [], {})
    assert len(traces) == 1
    mlflow.set_tracking_uri(store)
    predictions = []
    for member in group.members:
        assert_model_records_what_mlflow_would(MlflowClient(store), member.run_id)
        (output,) = MlflowClient(store).get_run(member.run_id).outputs.model_outputs
        model = mlflow.pyfunc.load_model(f"models:/{output.model_id}")
        splits = member.splits
        raw = (splits.x_test * splits.scale + splits.mean).astype(np.float32)
        with torch.no_grad():
            x = torch.as_tensor(splits.x_test, dtype=torch.float32)
            expected = member.module(x).double().numpy()
        request = pd.DataFrame(raw.astype(np.float64), columns=["x1", "x2"])
        predicted = np.asarray(model.predict(request, params={"output": "raw"}), dtype=np.float64)
        np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-5)
        predictions.append(predicted)
    assert not np.allclose(predictions[0], predictions[1])


def logged_model(store, run_id):
    (output,) = MlflowClient(store).get_run(run_id).outputs.model_outputs
    mlflow.set_tracking_uri(store)
    return f"models:/{output.model_id}", mlflow.pyfunc.load_model(f"models:/{output.model_id}")


def penguins_csv(folder):
    lines = ["species,bill_length_mm,island"]
    for i in range(90):
        species, island = [("Adelie", "Torgersen"), ("Gentoo", "Biscoe"), ("Chinstrap", "Dream")][
            i % 3
        ]
        lines.append(f"{species},{39 + 8 * (i % 3) + (i % 7) / 7:.2f},{island}")
    path = folder / "penguins.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def penguins_run(folder):
    """The config of a run on penguins_csv that learns it (the island alone tells the species)."""
    return compose_config(
        "data=csv", f"data.path={penguins_csv(folder)}", "data.target=species",
        "trainer.max_epochs=150", "tracking.log_model=true", "tracking.log_plots=false",
        "optimizer.lr=0.05",
    )  # fmt: skip


def test_a_csv_model_takes_named_columns_and_answers_with_the_csvs_labels(store, tmp_path):
    cfg = penguins_run(tmp_path)
    result = run_training(cfg)
    _, model = logged_model(store, result.run_id)
    signature = model.metadata.signature
    assert [(c.name, c.type.name) for c in signature.inputs.inputs] == [
        ("bill_length_mm", "double"), ("island", "string")
    ]  # fmt: skip
    request = pd.DataFrame(
        {"island": ["Biscoe", "Dream", "Torgersen"], "bill_length_mm": [55.0, 47.0, 39.0]}
    )
    labels = model.predict(request)
    assert list(labels.columns) == ["species"]
    assert set(labels["species"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    probabilities = model.predict(request, params={"output": "probabilities"})
    assert list(probabilities.columns) == ["Adelie", "Chinstrap", "Gentoo"]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    # The label is the most probable class, by name.
    assert list(labels["species"]) == list(probabilities.idxmax(axis=1))
    assert result.metrics["test/acc"] > 0.9  # the island alone tells the species here
    assert list(labels["species"]) == ["Gentoo", "Chinstrap", "Adelie"]


def test_a_regression_model_predicts_in_the_targets_units(store, tmp_path):
    rows = "".join(f"{i / 10:.1f},{3 + 2 * i / 10:.2f}\n" for i in range(100))  # 3 + 2 size
    path = tmp_path / "price.csv"
    path.write_text("size,price\n" + rows)
    cfg = compose_config(
        "data=csv", f"data.path={path}", "data.target=price", "trainer.precision=64",
        "tracking.log_model=true", "tracking.log_plots=false", "trainer.max_epochs=300",
        "optimizer.lr=0.05",
    )  # fmt: skip
    result = run_training(cfg)
    _, model = logged_model(store, result.run_id)
    request = pd.DataFrame({"size": [2.0, 8.0]})
    predicted = model.predict(request)["price"].to_numpy()
    splits = result.splits
    with torch.no_grad():
        x = torch.as_tensor((request.to_numpy() - splits.mean) / splits.scale)
        expected = result.module(x).double().numpy()[:, 0]
    np.testing.assert_allclose(predicted, expected, rtol=1e-12)
    # Prices, as the file writes them (7 and 19), not standardised values.
    np.testing.assert_allclose(predicted, [7.0, 19.0], atol=1.5)


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_request_with_named_columns(store, tmp_path):
    """A real `mlflow models serve` process, a JSON request over HTTP with named columns."""
    import json
    import socket
    import subprocess
    import urllib.request

    from tests.commands import BIN
    from tests.servers import START_TIMEOUT_S, UVICORN_READY, read_lines_until

    cfg = penguins_run(tmp_path)
    uri, model = logged_model(store, run_training(cfg).run_id)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # the scoring server runs `uvicorn` from this environment's bin/
        env={**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": f"{BIN}:{os.environ['PATH']}"},
    )  # fmt: skip
    try:
        read_lines_until(server.stdout, UVICORN_READY, START_TIMEOUT_S, seen := [])
        body = {"dataframe_records": [{"bill_length_mm": 55.0, "island": "Biscoe"}]}
        answers = {}
        for output in ("label", "probabilities"):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                data=json.dumps({**body, "params": {"output": output}}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                answers[output] = json.loads(response.read())["predictions"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert answers["label"] == [{"species": "Gentoo"}]
    (probabilities,) = answers["probabilities"]
    assert set(probabilities) == {"Adelie", "Chinstrap", "Gentoo"}
    assert max(probabilities, key=probabilities.get) == "Gentoo", seen
