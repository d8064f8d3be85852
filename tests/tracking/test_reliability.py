"""Faults a research run meets: interrupts, dead processes, broken stores, concurrency,
big stores, bad numbers, leaked credentials, hostile checkpoints, two processes agreeing."""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from nnlab.tracking.store import preflight
from tests.commands import BIN, run_cli, spawn_cli, wait_for
from tests.conftest import assert_model_records_what_mlflow_would
from tests.servers import START_TIMEOUT_S, UVICORN_READY, listening_addresses, read_lines_until

TINY = [
    "trainer.max_epochs=3",
    "data.n_samples=160",
    "trainer.progress=none",
    "tracking.log_model=false",
]
LONG = ["trainer.max_epochs=100000", "trainer.progress=none", "data.n_samples=200"]


def all_runs(uri, experiment="nnlab"):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def start_and_wait_for_metrics(store, *args):
    """Start a long nnlab-train and return once its run has logged an epoch."""
    proc = subprocess.Popen(
        [str(BIN / "nnlab-train"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    client = MlflowClient(store)

    def run_with_an_epoch():
        runs = all_runs(store) if Path(store[10:]).exists() else []
        if runs and client.get_metric_history(runs[0].info.run_id, "train/loss"):
            return runs[0].info.run_id

    return proc, wait_for(run_with_an_epoch, proc, "its run logged an epoch")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_ends_killed_with_its_metrics(store, sig):
    proc, run_id = start_and_wait_for_metrics(store, *LONG, "tracking.log_model=false")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "KILLED" in err and "Traceback" not in err
    run = MlflowClient(store).get_run(run_id)
    assert run.info.status == "KILLED"
    assert signal.Signals(sig).name in run.data.tags["nnlab.error"]
    assert len(MlflowClient(store).get_metric_history(run_id, "train/loss")) >= 1


@pytest.mark.slow
def test_sigkilled_run_is_found_stale_and_marked_killed(store):
    proc, run_id = start_and_wait_for_metrics(store, *LONG, "tracking.log_model=false")
    run = MlflowClient(store).get_run(run_id)
    assert run.data.tags["mlflow.nnlab.pid"] == str(proc.pid)
    assert run.data.tags["mlflow.nnlab.host"] == socket.gethostname()
    proc.kill()  # SIGKILL: nothing in the process can react
    proc.wait()
    assert MlflowClient(store).get_run(run_id).info.status == "RUNNING"
    listed = run_cli("nnlab-report", "--stale", check=True)
    assert run_id in listed.stdout
    run_cli("nnlab-report", "--stale", "--mark-killed", check=True)
    closed = MlflowClient(store).get_run(run_id)
    assert closed.info.status == "KILLED" and "mark-killed" in closed.data.tags["nnlab.error"]
    assert run_id not in run_cli("nnlab-report", "--stale", check=True).stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "command, running",
    [
        # the group's parent and its 3 members
        (["repeats=3"], 4),
        # the sweep's parent, and one population of the two jobs' 2 repeats each
        (["-m", "optimizer.lr=0.1,0.2", "repeats=2"], 5),
        # the search's parent and the two trials asked together (one population)
        (
            [
                "-m",
                "hydra/sweeper=nnlab_optuna",
                "optimizer=sgd",
                "optimizer.lr=interval(0.01,0.1)",
                "hydra.sweeper.n_jobs=2",
                "hydra.sweeper.n_trials=2",
            ],
            3,
        ),
    ],
    ids=["population", "sweep-with-repeats", "optuna"],
)
def test_after_sigkill_every_run_parents_included_is_listed_and_closed_by_one_command(
    store, command, running
):
    """SIGKILL leaves every run nnlab opened RUNNING: `nnlab-report --stale` lists all of
    them, parents too, and `--mark-killed` closes all of them at once."""
    proc = subprocess.Popen(
        [str(BIN / "nnlab-train"), *command, *LONG, "tracking.log_model=false"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a sweep's workers die with it
    )
    client = MlflowClient(store)

    def every_run_open_and_training():
        if not Path(store.removeprefix("sqlite:///")).exists():
            return None
        runs = [
            r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
        ]
        training = any(client.get_metric_history(r.info.run_id, "train/loss") for r in runs)
        ready = len(runs) == running and training
        return runs if ready else None

    runs = wait_for(every_run_open_and_training, proc, f"{running} runs open, one training")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert all(r.info.status == "RUNNING" for r in runs)
    listed = run_cli("nnlab-report", "--stale", check=True).stdout
    assert f"{running} stale run(s)" in listed
    assert all(r.info.run_id in listed for r in runs), listed
    closed = run_cli("nnlab-report", "--stale", "--mark-killed", check=True).stdout
    assert f"marked {running} run(s) KILLED" in closed
    for run in runs:
        after = client.get_run(run.info.run_id)
        assert after.info.status == "KILLED" and "mark-killed" in after.data.tags["nnlab.error"]
    assert "0 stale run(s)" in run_cli("nnlab-report", "--stale", check=True).stdout


def one_line_store_failure(proc, must_name):
    assert proc.returncode == 3, proc.stderr  # a store failure's exit code
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("nnlab-train")]
    assert len(lines) == 1 and must_name in lines[0], proc.stderr


# A broken store is found by the preflight (nnlab.tracking.store.preflight) before a run exists:
# one line,
# exit 3, and none of MLflow's minutes of retries or an unbounded wait for a lock. The tests
# count what happened (probes made, locks still held), not seconds on a shared machine.


def test_read_only_store_location_fails_with_one_line():
    uri = "sqlite:////sys/nnlab-store/mlflow.db"  # sysfs refuses writes, even to root
    proc = run_cli("nnlab-train", *TINY, env={"MLFLOW_TRACKING_URI": uri})
    one_line_store_failure(proc, "/sys/nnlab-store")


@pytest.mark.slow  # mounts a tmpfs
def test_full_disk_fails_with_one_line(tmp_path, migrated_store):
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        shutil.copy(migrated_store, mount / "mlflow.db")
        filler = mount / "filler"
        with open(filler, "wb") as f:  # leave almost nothing free
            f.write(b"\0" * (shutil.disk_usage(mount).free - 64 * 1024))
        proc = run_cli(
            "nnlab-train", *TINY, env={"MLFLOW_TRACKING_URI": f"sqlite:///{mount / 'mlflow.db'}"}
        )
        one_line_store_failure(proc, "full")
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_locked_store_gives_up_while_the_lock_is_still_held(store, monkeypatch):
    monkeypatch.setattr(preflight, "LOCK_WAIT_S", 1.0)  # the bound, shortened for the test
    db = store.removeprefix("sqlite:///")
    holder = sqlite3.connect(db)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock, and never lets go
    try:
        proc = run_cli("nnlab-train", *TINY)
        assert holder.in_transaction  # it gave up on its own: the lock was never released
        one_line_store_failure(proc, "locked by another process for more than 1 s")
    finally:
        holder.rollback()
        holder.close()
    assert all_runs(store) == []


def test_corrupt_store_fails_with_one_line(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a sqlite database" * 100)
    proc = run_cli("nnlab-train", *TINY, env={"MLFLOW_TRACKING_URI": f"sqlite:///{db}"})
    one_line_store_failure(proc, "corrupt")


def test_a_refused_connection_fails_with_one_line():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # bound, never listening: held by the test, connections refused
        uri = f"http://127.0.0.1:{held.getsockname()[1]}"
        proc = run_cli("nnlab-train", *TINY, env={"MLFLOW_TRACKING_URI": uri})
    one_line_store_failure(proc, "unreachable")


def test_a_server_that_drops_every_connection_is_probed_once_not_retried():
    """MLflow alone retries a failing server with back-off (minutes); the preflight asks once."""
    accepted = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        done = threading.Event()

        def drop_every_connection():
            while not done.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                accepted.append(conn)
                conn.close()

        thread = threading.Thread(target=drop_every_connection, daemon=True)
        thread.start()
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        proc = run_cli("nnlab-train", *TINY, env={"MLFLOW_TRACKING_URI": uri})
        done.set()
        thread.join()
    one_line_store_failure(proc, "unreachable")
    assert len(accepted) == 1


@pytest.mark.slow
def test_four_processes_write_40_runs_to_one_store(store, tmp_path):
    code = (
        "import sys\n"
        "from tests.conftest import compose_config\n"
        "from nnlab.training.run import run_training\n"
        "cfg = compose_config('trainer.max_epochs=2', 'data.n_samples=120',\n"
        "                     'tracking.log_plots=false', 'tracking.log_model=false')\n"
        "for i in range(10):\n"
        "    cfg.seed = 1000 * int(sys.argv[1]) + i\n"
        "    run_training(cfg)\n"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(w)],
            cwd=Path(__file__).parents[2],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    errors = [w.communicate(timeout=600)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0], errors
    runs = all_runs(store)
    assert len(runs) == 40 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.params["seed"] for r in runs}) == 40
    client = MlflowClient(store)
    for run in runs[::10]:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [0, 1]


def test_report_pages_through_every_run(store, monkeypatch):
    from nnlab.tracking.store import queries

    monkeypatch.setattr(queries, "PAGE", 50)  # MLflow's 1000 a page, shrunk: 3 pages, one short
    client = MlflowClient(store)
    exp = client.create_experiment("big", artifact_location=Path(store[10:]).parent.as_uri())
    for i in range(120):
        client.create_run(exp, run_name=f"r{i}", tags={"nnlab.objective": "val/loss"})
    proc = run_cli("nnlab-report", "--runs", "-e", "big", check=True)
    rows = [ln for ln in proc.stdout.splitlines() if " r" in ln and "RUNNING" in ln]
    assert sorted(int(ln.split(" r")[1].split()[0]) for ln in rows) == list(range(120))


def test_credentials_never_reach_the_store(store, tmp_path, monkeypatch):
    secret = "s3cr3t-t0ken-value"
    env = {"MY_API_TOKEN": secret}
    run_cli(
        "nnlab-train",
        *TINY,
        f"tracking.run_name=user:{secret}@x",
        "tracking.experiment=creds",
        "+model.note=${oc.env:MY_API_TOKEN}",
        check=True,
        env=env,
    )
    (run,) = all_runs(store, "creds")
    client = MlflowClient(store)
    texts = [*run.data.params.values(), *run.data.tags.values(), run.info.run_name]
    for name in ("config.yaml", "overrides.yaml"):
        texts.append(
            Path(client.download_artifacts(run.info.run_id, name, str(tmp_path))).read_text()
        )
    assert not [t for t in texts if secret in t]
    assert run.data.params["model.note"] == "***"


def test_credentials_in_the_tracking_uri_are_redacted():
    from nnlab.tracking.store.redact import redact

    assert redact("http://alice:hunter22@mlflow.example:5000/x") == (
        "http://alice:***@mlflow.example:5000/x"
    )
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


@pytest.mark.slow
def test_same_config_gives_identical_metrics_in_two_processes(store):
    sweep = ["-m", "backend=numpy,torch_scratch,torch", *TINY, "tracking.log_plots=false"]
    spawn_cli("nnlab-train", *sweep, "tracking.log_model=false", check=True)  # a child process
    run_cli("nnlab-train", *sweep, "tracking.log_model=false", check=True)  # and this one
    client = MlflowClient(store)
    children = [r for r in all_runs(store) if "mlflow.parentRunId" in r.data.tags]
    by_backend = {}
    for run in children:
        history = {
            k: [m.value for m in client.get_metric_history(run.info.run_id, k)]
            for k in run.data.metrics
        }
        by_backend.setdefault(run.data.params["backend"], []).append(history)
    assert sorted(by_backend) == ["numpy", "torch", "torch_scratch"]
    for backend, (first, second) in by_backend.items():
        assert first == second, backend
        assert len(first["train/loss"]) == 3


def test_nan_in_the_data_is_refused_before_a_run(store):
    import numpy as np

    from nnlab.data.datasets import DATASETS, REGRESSION, DatasetSpec
    from nnlab.training.run import run_training
    from tests.conftest import compose_config

    def with_nan(n, noise, k, rng):
        x = rng.normal(size=(n, 1))
        x[3, 0] = np.nan
        return x, x[:, 0] * 2

    DATASETS["with_nan"] = DatasetSpec("with_nan", REGRESSION, 1, with_nan)
    try:
        cfg = compose_config("data=sine", "data.name=with_nan")
        with pytest.raises(ValueError, match="data.name=with_nan.*not finite"):
            run_training(cfg)
    finally:
        del DATASETS["with_nan"]
    assert all_runs(store) == []


@pytest.mark.slow
def test_resume_continues_a_killed_run_exactly(store):
    common = ["data.n_samples=200", "tracking.log_model=false", "tracking.log_plots=false"]
    proc, run_id = start_and_wait_for_metrics(
        store, *LONG, *common, "trainer.checkpoint_every_s=0.5"
    )
    client = MlflowClient(store)
    wait_for(lambda: client.list_artifacts(run_id, "checkpoints"), proc, "a checkpoint was logged")
    proc.kill()  # SIGKILL: no chance to save or flush anything more
    proc.wait()
    done = max(m.step for m in client.get_metric_history(run_id, "train/loss"))
    target = done + 40
    resumed = run_cli(
        "nnlab-train",
        f"resume={run_id}",
        f"trainer.max_epochs={target}",
        "tracking.log_model=true",
        check=True,
    )
    assert "resuming run" in resumed.stdout
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    # Its model links the step-0 metrics the killed process wrote, as well as this one's.
    assert_model_records_what_mlflow_would(client, run_id)
    curve = client.get_metric_history(run_id, "train/loss")
    assert [m.step for m in sorted(curve, key=lambda m: m.step)] == list(range(target))

    run_cli(
        "nnlab-train",
        *TINY[2:],
        *common,
        f"trainer.max_epochs={target}",
        "tracking.experiment=straight",
        check=True,
    )
    (straight,) = all_runs(store, "straight")
    expected = client.get_metric_history(straight.info.run_id, "train/loss")
    by_step = {m.step: m.value for m in curve}
    assert [by_step[m.step] for m in expected] == [m.value for m in expected]


def test_resume_refuses_a_checkpoint_that_would_run_code(store, tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    run_cli("nnlab-train", *TINY, "trainer.max_epochs=2", check=True)
    (run,) = all_runs(store)
    client = MlflowClient(store)
    client.set_terminated(run.info.run_id, "KILLED")  # pretend it was interrupted
    crafted = tmp_path / "last.ckpt"
    crafted.write_bytes(pickle.dumps({"state_dict": Exploit()}))
    client.log_artifact(run.info.run_id, str(crafted), "checkpoints")
    proc = run_cli("nnlab-train", f"resume={run.info.run_id}")
    assert proc.returncode == 2 and "refused" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()
    assert client.get_run(run.info.run_id).info.status == "KILLED"  # untouched


def test_resume_of_a_finished_or_unknown_run_is_one_line(store):
    run_cli("nnlab-train", *TINY, check=True)
    (run,) = all_runs(store)
    finished = run_cli("nnlab-train", f"resume={run.info.run_id}")
    assert finished.returncode == 2 and "already FINISHED" in finished.stderr
    unknown = run_cli("nnlab-train", "resume=0123abcd")
    assert unknown.returncode == 2 and "no such run" in unknown.stderr


@pytest.mark.slow
def test_ui_launcher_binds_to_localhost_only(store):
    root = Path(__file__).parents[2]
    ui = subprocess.Popen(  # port 0: the UI picks a free port and prints it
        ["bash", str(root / "scripts" / "mlflow_ui.sh"), "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        url = read_lines_until(ui.stderr, UVICORN_READY, START_TIMEOUT_S, []).group(1)
        port = int(url.rsplit(":", 1)[1])
        # Uvicorn prints its address once bound; it listens a moment later.
        listening = wait_for(lambda: listening_addresses(port), ui, "the UI listened")
        assert listening == ["0100007F:" + f"{port:04X}"]  # 127.0.0.1 only, not 0.0.0.0
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
