"""`nnlab-reproduce` end to end (in process, and once as the real executable): exact re-runs,
and tampering that must be caught."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.commands import run_cli, spawn_cli

TINY = [
    "trainer.max_epochs=3",
    "data.n_samples=160",
    "trainer.progress=none",
    "tracking.log_model=false",
]


def _runs(uri):
    client = MlflowClient(uri)
    return client, client.search_runs([client.get_experiment_by_name("nnlab").experiment_id])


def test_reproduces_a_numpy_run_exactly_and_catches_a_tampered_metric(store):
    run_cli("nnlab-train", "backend=numpy", *TINY, check=True)
    client, (original,) = _runs(store)
    same = run_cli("nnlab-reproduce", original.info.run_id, check=True)
    assert "reproduced exactly" in same.stdout
    assert "data: the same (test " in same.stdout  # the regenerated splits' digests match
    _, runs = _runs(store)
    (copy,) = [r for r in runs if r.info.run_id != original.info.run_id]
    assert copy.data.tags["nnlab.reproduces"] == original.info.run_id
    assert copy.data.params["backend"] == "numpy"
    assert copy.data.metrics == original.data.metrics

    client.log_metric(original.info.run_id, "val/loss", 123.0, step=2)  # tamper
    tampered = run_cli("nnlab-reproduce", original.info.run_id)
    assert tampered.returncode == 1
    assert "NOT reproduced" in tampered.stdout and "val/loss" in tampered.stdout


@pytest.mark.slow
def test_reproduces_a_sweep_child_and_catches_a_tampered_config(store):
    run_cli("nnlab-train", "-m", "backend=torch_scratch,torch", *TINY, check=True)
    client, runs = _runs(store)
    child = next(r for r in runs if r.data.params.get("backend") == "torch_scratch")
    assert "reproduced exactly" in run_cli("nnlab-reproduce", child.info.run_id, check=True).stdout

    artifact = Path(child.info.artifact_uri.removeprefix("file://")) / "config.yaml"
    original = artifact.read_text()
    artifact.write_text(original.replace("lr: 0.01", "lr: 0.02"))  # tamper with the store
    assert artifact.read_text() != original
    tampered = run_cli("nnlab-reproduce", child.info.run_id)
    assert tampered.returncode == 1 and "NOT reproduced" in tampered.stdout


@pytest.mark.slow
def test_unknown_run_is_one_line_and_exit_2(store):  # the real executable
    proc = spawn_cli("nnlab-reproduce", "0123456789abcdef")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "0123456789abcdef" in proc.stderr


def test_dataset_digests_tell_identical_data_from_different_data(store):
    from nnlab.cli.reproduce import compare_data
    from nnlab.tracking.dataset_inputs import logged_digests
    from nnlab.training.run import run_training
    from tests.conftest import compose_config

    client = MlflowClient(store)
    fast = ["tracking.log_plots=false", "tracking.log_model=false"]
    a, b, c = (
        client.get_run(run_training(compose_config(*fast, f"seed={seed}")).run_id)
        for seed in (1, 1, 2)
    )
    assert set(logged_digests(a)) == {"training", "validation", "test"}  # the Dataset column
    assert not compare_data(a, b)  # same seed: the same numbers
    assert compare_data(a, c)  # another seed draws other data: caught
