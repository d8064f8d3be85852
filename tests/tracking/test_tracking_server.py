"""The shared tracking server (scripts/tracking_server.py): a real PostgreSQL and a real
`mlflow server --serve-artifacts`, started and stopped by the test; a Ray sweep logging to it
over HTTP on a real Ray head (the `ray_head` fixture in conftest.py) while one of its workers
is killed; many writers at once; and the server going away in the middle of a sweep."""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from nnlab.env import environ_snapshot
from nnlab.tracking.store.names import PID_TAG, POPULATION_TAG
from tests.commands import run_cli, spawn_cli, wait_for
from tests.servers import TrackingServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    """One server for this file's tests (starting one migrates a fresh PostgreSQL: ~40 s); the
    last test stops and restarts it."""
    s = TrackingServer()
    s.start()
    try:
        with s.credentials_in_environment():  # authentication is on: the admin's
            yield s
    finally:
        s.stop()
        assert not s.postgres_running()  # both servers stopped
        s.remove()


def watch_running_jobs(url, stop: threading.Event, killed: list, seen: dict, members: int):
    """Watch the server until `stop`: note the command line of each job's process while its
    run is RUNNING (`seen`: run id -> /proc cmdline; the pid tag is then that live process's),
    and SIGKILL the first process (a Ray worker) seen with all `members` of its population
    RUNNING with their params logged (their inputs are, when they start training). `killed`:
    that process's pid."""
    client = MlflowClient(url)
    while not stop.is_set():
        exp = client.get_experiment_by_name("nnlab")
        running = (
            client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'") if exp else []
        )
        started: dict[str, int] = {}  # pid -> its RUNNING runs with their params logged
        for run in running:
            pid = run.data.tags.get(PID_TAG)
            if "mlflow.parentRunId" not in run.data.tags or not pid:
                continue
            started[pid] = started.get(pid, 0) + bool(run.data.params)
            if run.info.run_id in seen:
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue  # it ended since the search
            if cmdline:  # empty: it exited and is not reaped yet
                seen[run.info.run_id] = cmdline
        training = [pid for pid, n in started.items() if n == members]
        if training and not killed:
            os.kill(int(training[0]), signal.SIGKILL)
            killed.append(training[0])
        time.sleep(0.1)


# One Ray sweep for everything Ray must do (each costs minutes in a full `make test`): log over
# HTTP, train a population as one Ray job, and lose only the killed worker's job.
@pytest.mark.timeout(1000)  # a whole sweep; its command has 900 s
def test_a_ray_sweep_logs_over_http_and_survives_a_killed_worker(server, ray_head, monkeypatch):
    address, decoy = ray_head
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    stop, killed, seen = threading.Event(), [], {}
    watcher = threading.Thread(target=watch_running_jobs, args=(server.url, stop, killed, seen, 3))
    watcher.start()
    try:
        proc = spawn_cli(
            "nnlab-train",
            "-m",
            "hydra/launcher=nnlab_ray",
            f"hydra.launcher.ray.init.address={address}",
            # Two activations: two populations of three learning rates, two Ray jobs.
            "optimizer.lr=0.001,0.01,0.1",
            "model.activation=relu,tanh",
            "trainer.max_epochs=100",  # long enough for the watcher to see a job training
            "data.n_samples=200",
            "trainer.progress=none",
            timeout=900,
        )
    finally:
        stop.set()
        watcher.join()
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(server.url)
    exp = client.get_experiment_by_name("nnlab")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("nnlab.sweep") == "true"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 6 and parent.info.status == "FINISHED"
    # Each activation's three learning rates are one population (the population sweeper): one
    # Ray job, one worker process.
    for activation in ("relu", "tanh"):
        members = [c for c in children if c.data.params["model.activation"] == activation]
        assert {c.data.tags[POPULATION_TAG] for c in members} == {"3 members trained together"}
        assert len({c.data.tags[PID_TAG] for c in members}) == 1
    # The killed worker's three runs are closed, not left RUNNING; the other job finished.
    assert len(killed) == 1, "no job was seen RUNNING to kill"
    lost = [c for c in children if c.data.tags[PID_TAG] == killed[0]]
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert len(lost) == 3 and {c.info.status for c in lost} == {"FAILED"}
    assert all("process ended without closing" in c.data.tags["nnlab.error"] for c in lost)
    assert len(finished) == 3 and "lost in Ray" in proc.stdout
    # They ran in Ray workers, not in the driver's process. Ray's processes are checked as seen
    # while their runs were open: read after the sweep, a pid may name another process (pids
    # wrap around at 32,768 here; a clean-clone CI run once found one taken by a non-Ray one).
    assert all(c.data.tags[PID_TAG] != parent.data.tags[PID_TAG] for c in children)
    ran = [seen[c.info.run_id] for c in finished if c.info.run_id in seen]
    assert ran and all(b"ray" in cmdline for cmdline in ran), ran
    with tempfile.TemporaryDirectory() as tmp:
        for child in finished:  # curves, test metrics, figures and model, like any job
            history = client.get_metric_history(child.info.run_id, "train/loss")
            assert [m.step for m in history] == list(range(100))
            assert {"val/loss", "test/acc"} <= set(child.data.metrics)
            plots = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
            assert "plots/curves.png" in plots
            config = Path(client.download_artifacts(child.info.run_id, "config.yaml", tmp))
            assert "optimizer" in config.read_text()  # uploaded by a worker, served by HTTP
            assert len(child.outputs.model_outputs) == 1
        summary = client.download_artifacts(parent.info.run_id, "sweep_summary.csv", tmp)
        assert Path(summary).read_text().count("FINISHED") == 3
    # The artifacts live on the server's side only, under its artifact root; nothing went to
    # the store the workers would have inherited from the Ray head.
    assert list((server.data / "artifacts").rglob("config.yaml"))
    assert not decoy.exists() or not MlflowClient(f"sqlite:///{decoy}").search_runs(["0"])
    # The credentials travelled to the Ray workers in their runtime_env, and no further: the
    # password is in no artifact (config.yaml, overrides.yaml, the models) and no tag or param.
    password = server.credentials["MLFLOW_TRACKING_PASSWORD"].encode()
    files = [p for p in (server.data / "artifacts").rglob("*") if p.is_file()]
    assert files and not [p for p in files if password in p.read_bytes()]
    for run in runs:
        recorded = [*run.data.tags.values(), *run.data.params.values()]
        assert not [v for v in recorded if password.decode() in v]


WRITER = """
import sys
from mlflow.entities import Metric
from nnlab.tracking.store.client import get_client
from nnlab.tracking.store.runs import open_run
client = get_client(sys.argv[1])
for i in range(10):
    with open_run(client, "writers", sys.argv[1], f"w{sys.argv[2]}-{i}", {}) as run_id:
        client.log_batch(run_id, metrics=[Metric("m", k * 0.5, 0, k) for k in range(20)])
"""


def test_eight_writers_at_once_lose_nothing(server):
    env = {**environ_snapshot(), "MLFLOW_TRACKING_URI": server.url}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, server.url, str(w)], env=env)
        for w in range(8)
    ]
    assert [w.wait(timeout=600) for w in writers] == [0] * 8
    client = MlflowClient(server.url)
    exp = client.get_experiment_by_name("writers")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert len(runs) == 80 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.info.run_name for r in runs}) == 80
    for run in runs[::7]:
        values = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "m"))
        assert values == [(k, k * 0.5) for k in range(20)]


def test_the_server_going_away_mid_sweep(server, monkeypatch):
    """Each job fails in one line naming the server, within MLflow's bounded retries; once
    the server is back, --stale --mark-killed closes what the dead sweep left RUNNING."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    long_jobs = ["trainer.max_epochs=5000", "data.n_samples=200", "trainer.progress=none"]
    sweep = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "nnlab-train"),
            "-m",
            "optimizer.lr=0.01,0.02,0.03",
            *long_jobs,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ_snapshot(),
    )
    client = MlflowClient(server.url)

    def a_job_training():
        exp = client.get_experiment_by_name("nnlab")
        running = (
            client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'") if exp else []
        )
        return any("mlflow.parentRunId" in r.data.tags for r in running)

    wait_for(a_job_training, sweep, "a job started training")
    server.stop()
    # MLflow's retries are bounded (nnlab.tracking.store.client sets them): the sweep ends by
    # itself. A hang would run into this test's pytest-timeout budget instead.
    out, err = sweep.communicate()
    assert sweep.returncode != 0, (out[-2000:], err[-2000:])
    failures = [ln for ln in err.splitlines() if "nnlab-train: job" in ln]
    assert failures and all(server.url in ln for ln in failures), err[-2000:]
    server.start()  # same data: the runs the dead sweep left behind are still RUNNING
    report = run_cli("nnlab-report", "--stale", "--mark-killed", check=True)
    assert "marked" in report.stdout
    exp = client.get_experiment_by_name("nnlab")
    assert not client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")
