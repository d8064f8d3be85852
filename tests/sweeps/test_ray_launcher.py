"""Sweeps on a real Ray cluster that the test session starts once (`ray start --head`, 2 CPUs,
127.0.0.1; the `ray_head` fixture in conftest.py) and stops. The head has a decoy
MLFLOW_TRACKING_URI and none of the sweep's variables: its workers inherit the head's
environment, not the driver's, so a job that logs to the right store under the right parent
got both through the launcher's runtime_env."""

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.commands import spawn_cli

pytestmark = pytest.mark.slow
JOB = ["trainer.max_epochs=100", "data.n_samples=200", "trainer.progress=none"]


def runs_of(store):
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("nnlab")
    return client, (client.search_runs([exp.experiment_id]) if exp else [])


def watch_running_jobs(store, stop: threading.Event, killed: list, seen: dict):
    """Watch the store until `stop`: note the command line of each job's process while its run
    is RUNNING (`seen`: run id -> /proc cmdline; the pid tag is then that live process's), and
    SIGKILL the process of the first job seen (a Ray worker)."""
    client = MlflowClient(store)
    while not stop.is_set():
        exp = client.get_experiment_by_name("nnlab")
        for run in (
            client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'") if exp else []
        ):
            pid = run.data.tags.get("mlflow.nnlab.pid")
            if "mlflow.parentRunId" not in run.data.tags or not pid or run.info.run_id in seen:
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue  # it ended since the search
            if not cmdline:
                continue  # it exited and is not reaped yet: its cmdline reads empty
            seen[run.info.run_id] = cmdline
            if not killed:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(run.info.run_id)
        time.sleep(0.1)


@pytest.mark.timeout(1000)  # a whole sweep; its command has 900 s
def test_a_sweep_runs_in_ray_workers_and_survives_a_killed_worker(store, ray_head):
    address, decoy = ray_head
    stop, killed, seen = threading.Event(), [], {}
    watcher = threading.Thread(target=watch_running_jobs, args=(store, stop, killed, seen))
    watcher.start()
    try:
        proc = spawn_cli(
            "nnlab-train",
            "-m",
            "hydra/launcher=nnlab_ray",
            # One Ray job per sweep job, so that killing one loses one: the population sweeper
            # would hand Ray all six as one population.
            "hydra/sweeper=basic",
            f"hydra.launcher.ray.init.address={address}",
            "optimizer.lr=0.001,0.01,0.1,0.3",
            *JOB,
            timeout=900,
        )
    finally:
        stop.set()
        watcher.join()
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = runs_of(store)
    (parent,) = [r for r in runs if r.data.tags.get("nnlab.sweep") == "true"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and parent.info.status == "FINISHED"
    # The killed job's run is closed, not left RUNNING; the other three finished.
    assert len(killed) == 1, "no job was seen RUNNING to kill"
    by_id = {c.info.run_id: c for c in children}
    assert by_id[killed[0]].info.status == "FAILED"
    assert "process ended without closing" in by_id[killed[0]].data.tags["nnlab.error"]
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert len(finished) == 3 and "lost in Ray" in proc.stdout
    # They ran in Ray workers: not in the driver's process.
    driver = parent.data.tags["mlflow.nnlab.pid"]
    assert all(c.data.tags["mlflow.nnlab.pid"] != driver for c in children)
    # Ray's processes, as seen while their runs were open. Read after the sweep, a pid may name
    # another process by then: pids (threads' ids too) wrap around at 32,768 here, and a
    # clean-clone CI run once found a finished job's pid taken by a process that was no Ray's.
    ran = [seen[c.info.run_id] for c in finished if c.info.run_id in seen]
    assert ran and all(b"ray" in cmdline for cmdline in ran), ran
    for c in finished:  # metrics, figures and model, like any job
        assert {"train/loss", "val/loss", "test/acc"} <= set(c.data.metrics)
        files = {a.path for a in client.list_artifacts(c.info.run_id, "plots")}
        assert "plots/curves.png" in files
        assert len(c.outputs.model_outputs) == 1
    # Nothing went to the store the workers would have inherited from the head.
    assert not decoy.exists() or not MlflowClient(f"sqlite:///{decoy}").search_runs(["0"])


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
    assert runs_of(store)[1] == []
