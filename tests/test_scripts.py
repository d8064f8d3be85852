"""Scripts and presets as users run them."""

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from nnlab.paths import PROJECT_ROOT
from tests.conftest import compose_config

PRESETS = sorted(p.stem for p in (PROJECT_ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.slow
def test_compare_backends_overlays_three_agreeing_runs(store, tmp_path):
    out = tmp_path / "overlay.png"
    proc = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts" / "compare_backends.py"),
            "data.n_samples=150",
            "trainer.max_epochs=5",
            "optimizer=sgd",
            "trainer.progress=none",
            "tracking.log_model=false",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 10_000
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("nnlab").experiment_id])
    assert sorted(r.data.tags["nnlab.backend"] for r in runs) == ["numpy", "torch", "torch_scratch"]
    for run in runs:
        files = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert "plots/backend_comparison.png" in files
    table = proc.stdout.splitlines()
    assert any(line.startswith("numpy") for line in table)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_composes_and_trains_shrunken(store, preset):
    from nnlab.config_check import check_config
    from nnlab.pipeline import run_training

    cfg = compose_config(f"experiment={preset}", "trainer.max_epochs=2", "tracking.log_model=false")
    check_config(cfg)
    result = run_training(cfg)
    assert Path(result.tracking_uri.removeprefix("sqlite:///")).exists()
    run = MlflowClient(store).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.max_epochs"] == "2"
