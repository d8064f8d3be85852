"""The Ray launcher (hydra_plugins.nnlab_launchers.ray_launcher) when no Ray head answers. A
sweep on a real Ray head, logging over HTTP while one of its workers is killed, is in
tests/tracking/test_tracking_server.py: one sweep there covers what Ray must do, since each
costs minutes of a full `make test`."""

import socket

import pytest
from mlflow.tracking import MlflowClient

from tests.commands import spawn_cli

pytestmark = pytest.mark.slow
JOB = ["trainer.max_epochs=100", "data.n_samples=200", "trainer.progress=none"]


def runs_of(store):
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("nnlab")
    return client.search_runs([exp.experiment_id]) if exp else []


def test_an_unreachable_ray_head_is_one_line_before_any_run(store):
    with socket.socket() as held:  # bound and never listening: nothing answers there
        held.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{held.getsockname()[1]}"
        proc = spawn_cli(
            "nnlab-train",
            "-m",
            "hydra/launcher=nnlab_ray",
            f"hydra.launcher.ray.init.address={address}",
            "optimizer.lr=0.01,0.1",
            *JOB,
        )
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and address in lines[0] and "no Ray head answers" in lines[0]
    assert runs_of(store) == []
