"""Scripts and presets as users run them."""

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from nnlab import backends
from nnlab.paths import PROJECT_ROOT
from tests.commands import run_script
from tests.conftest import compose_config

PRESETS = sorted(p.stem for p in (PROJECT_ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.slow
def test_compare_backends_overlays_every_backends_agreeing_runs(store, tmp_path):
    out = tmp_path / "overlay.png"
    proc = run_script(
        PROJECT_ROOT / "scripts" / "compare_backends.py",
        "data.n_samples=150",
        "trainer.max_epochs=5",
        "optimizer=sgd",
        "trainer.progress=none",
        "tracking.log_model=false",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 10_000
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("nnlab").experiment_id])
    assert sorted(r.data.params["backend"] for r in runs) == backends.names()
    for run in runs:
        files = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert "plots/backend_comparison.png" in files
    table = proc.stdout.splitlines()
    for name in backends.names():  # the table: a row per backend, its gap to torch tiny
        row = next(line.split() for line in table if line.startswith(f"{name} "))
        assert float(row[-1]) <= 1e-6


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_composes_and_trains_shrunken(store, preset):
    from nnlab.config.check import check_config
    from nnlab.training.run import run_training

    cfg = compose_config(
        f"experiment={preset}",
        "trainer.max_epochs=2",
        "trainer.progress=none",
        "tracking.log_model=false",
        shrink=False,
    )
    check_config(cfg)
    result = run_training(cfg)
    run = MlflowClient(store).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.max_epochs"] == "2"
    # The run trained what the preset says: each of its settings is the run's param (or, for
    # tracking.*, where the run went), and its data and optimizer choices were taken.
    preset_file = OmegaConf.load(PROJECT_ROOT / "conf" / "experiment" / f"{preset}.yaml")
    written = OmegaConf.to_container(preset_file)
    choices = {  # defaults: [{"override /data": "moons"}, ...]
        group.removeprefix("override /"): option
        for item in written.pop("defaults", [])
        for group, option in item.items()
    }
    assert run.data.params["data.name"] == choices.get("data", run.data.params["data.name"])
    if "optimizer" in choices:
        assert run.data.params["optimizer.name"] == choices["optimizer"]
    assert (
        MlflowClient(store).get_experiment(run.info.experiment_id).name
        == (written.pop("tracking")["experiment"])
    )
    for key, value in flatten(written).items():
        if key != "trainer.max_epochs":
            assert run.data.params[key] == str(value), key


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_expectations_hold_or_fail_as_stated():
    from nnlab.seed_scripts.harness import Expectation

    assert Expectation("a", 0.96, ">=", 0.95).holds()
    assert not Expectation("a", 0.94, ">=", 0.95).holds()
    assert Expectation("b", 1.0000001, "~", 1.0, tolerance=1e-6).holds()
    assert not Expectation("b", 1.00001, "~", 1.0, tolerance=1e-6).holds()
    assert not Expectation("c", 0.7, "<=", 0.65).holds()


@pytest.mark.slow
def test_seed000_reproduction_quick_mode_logs_a_summary(store, tmp_path):
    proc = run_script(
        PROJECT_ROOT / "scripts" / "reproduce_seed000.py", "--quick", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "RESULT seed000: 2/2 expectations hold (quick mode)" in proc.stdout
    assert "(not enforced)" in proc.stdout  # thresholds that need full training are shown
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("seed000").experiment_id])
    (summary,) = [r for r in runs if r.data.tags.get("nnlab.reproduction") == "true"]
    files = {a.path for a in client.list_artifacts(summary.info.run_id)}
    assert "expectations.txt" in files
    assert len([r for r in runs if r.info.run_id != summary.info.run_id]) == 4
    assert (tmp_path / "regression_curves.png").exists()
