"""`nnlab-train` as a user runs it, writing to a temporary store read back with MlflowClient:
in this process (tests/commands.py), and once as the real executable for its exit code and
stderr."""

import json

import pytest
from mlflow.tracking import MlflowClient

from nnlab.tracking.store.names import CHART_VIEW_TAG
from tests.commands import run_cli, spawn_cli

TINY = ["trainer.max_epochs=3", "data.n_samples=200"]


def runs(uri, experiment="nnlab"):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def tags_of(run):
    return run.data.tags


def artifact_paths(client, run_id, path=""):
    found = []
    for item in client.list_artifacts(run_id, path):
        found += artifact_paths(client, run_id, item.path) if item.is_dir else [item.path]
    return found


def test_classification_run_is_fully_tracked(store):
    proc = run_cli(
        "nnlab-train", "data=moons", "model.hidden=[8,4]", "optimizer.lr=0.02", *TINY, check=True
    )
    (run,) = runs(store)
    assert run.info.run_id in proc.stdout and "mlflow ui" in proc.stdout
    assert "127.0.0.1" in proc.stdout
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "moons 2-8-4-1 relu · adam lr=0.02"
    params = run.data.params
    assert params["optimizer.lr"] == "0.02" and params["model.hidden"] == "[8, 4]"
    assert params["data.name"] == "moons" and params["trainer.max_epochs"] == "3"
    assert params["optimizer.name"] == "adam" and params["backend"] == "torch"
    # Params are the experiment only; bookkeeping stays in config.yaml and tags.
    assert not [k for k in params if k.startswith(("tracking.", "resume", "objective"))]
    assert not [k for k in params if "_target_" in k or "_partial_" in k or "progress" in k]
    assert tags_of(run)["mlflow.source.name"] == "nnlab-train"
    note = tags_of(run)["mlflow.note.content"]
    assert "**moons**" in note and "**adam**" in note and "test/acc" in note
    tags = run.data.tags
    assert tags["nnlab.task"] == "binary" and params["backend"] == "torch"
    # Bookkeeping is hidden from the run page (MLflow hides mlflow.* tags); what shows is few.
    assert {"mlflow.nnlab.pid", "mlflow.nnlab.host", "mlflow.nnlab.config_hash"} <= set(tags)
    assert sorted(k for k in tags if k.startswith("nnlab.")) == [
        "nnlab.group",  # the config without its seeds: runs of one configuration group
        "nnlab.loss",
        "nnlab.objective",
        "nnlab.task",
    ]
    assert len(tags["mlflow.source.git.commit"]) == 40
    client = MlflowClient(store)
    for key in ("train/loss", "val/loss", "val/acc"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 1, 2]
    assert {"test/loss", "test/acc", "test/auroc"} <= set(run.data.metrics)
    # One evaluation, at step 0: MLflow's charts draw a single-step metric as a bar with its
    # value, where step = last epoch drew a lone dot.
    for key in ("test/loss", "test/acc", "test/auroc"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0]
    # The experiment carries the chart view the printed "charts" link opens.
    view = json.loads(client.get_experiment(run.info.experiment_id).tags[CHART_VIEW_TAG])
    (loss_chart,) = [c for c in view["compareRunCharts"] if c["type"] == "LINE"]
    assert loss_chart["selectedMetricKeys"] == ["train/loss", "val/loss"]
    assert {k for k in run.data.metrics if k.startswith(("train/", "val/"))} == {
        "train/loss",
        "val/loss",
        "val/acc",
    }  # per epoch: exactly these keys
    assert set(artifact_paths(client, run.info.run_id)) == {
        "config.yaml",
        "overrides.yaml",
        "plots/curves.png",
        "plots/decision_boundary.png",
        "checkpoints/model.ckpt",
    }


def test_regression_run_logs_r2_mse_and_prediction_plot(store):
    run_cli("nnlab-train", "data=nonlinear3d", "model.hidden=[10,10]", *TINY, check=True)
    (run,) = runs(store)
    assert {"val/r2", "test/r2", "test/mse", "test/mae"} <= set(run.data.metrics)
    assert "plots/predictions.png" in artifact_paths(MlflowClient(store), run.info.run_id)


@pytest.mark.slow
def test_bad_value_gets_one_line_exit_2_and_no_run(store):
    proc = spawn_cli("nnlab-train", "model.activation=swish", *TINY)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.activation=swish" in lines[0] and "relu" in lines[0]
    assert "Traceback" not in proc.stderr
    assert runs(store) == []


def test_unknown_dataset_names_the_choices_and_creates_no_run(store):
    proc = run_cli("nnlab-train", "data=mnist", *TINY)
    assert proc.returncode != 0
    (line,) = proc.stderr.strip().splitlines()  # one line naming the value and the choices
    assert "data=mnist" in line and "moons" in line and "blobs" in line
    assert runs(store) == []


def test_failed_run_exits_nonzero_and_ends_failed(store):
    proc = run_cli("nnlab-train", "data=sine", "optimizer=sgd", "optimizer.lr=1e8", *TINY)
    assert proc.returncode != 0
    (run,) = runs(store)
    assert run.info.status == "FAILED" and "TrainingDiverged" in run.data.tags["nnlab.error"]
    assert "Traceback" not in proc.stderr and "train/loss is" in proc.stderr
    # Its page says where and why it stopped, and keeps what it measured until then.
    note = run.data.tags["mlflow.note.content"]
    assert "**Failed at epoch 0:**" in note and "TrainingDiverged" in note
    assert "train/loss" in run.data.metrics


def test_config_key_chooses_the_store_and_experiment(store, tmp_path):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    run_cli(
        "nnlab-train", f"tracking.uri={other}", "tracking.experiment=elsewhere", *TINY, check=True
    )
    assert runs(store) == [] and len(runs(other, "elsewhere")) == 1


def test_print_config_creates_no_run(store):
    proc = run_cli("nnlab-train", "--cfg", "job", check=True)
    assert "activation: relu" in proc.stdout and runs(store) == []


@pytest.mark.slow
def test_a_first_run_says_what_it_creates_and_nothing_of_matplotlib_or_mlflow(tmp_path):
    """A new user's first run: no font cache, no store. nnlab says it creates the store; the
    font cache's and MLflow's migration lines are not shown."""
    db = tmp_path / "fresh" / "mlflow.db"
    proc = spawn_cli(
        "nnlab-train",
        f"tracking.uri=sqlite:///{db}",
        *TINY,
        env={"MPLCONFIGDIR": str(tmp_path / "matplotlib")},  # an empty font cache
        check=True,
    )
    console = proc.stdout + proc.stderr
    assert f"nnlab: creating the store at {db}" in proc.stdout
    assert (tmp_path / "matplotlib").exists()  # matplotlib did build its cache
    for noise in ("fontManager", "Creating initial MLflow database tables", "Updating database"):
        assert noise not in console, console
    assert "UserWarning" not in console, console
