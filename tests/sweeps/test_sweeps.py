"""Hydra multiruns as MLflow units: parent and children, summary, failures, interrupts,
parallel workers, skip_finished, Optuna, and a sweep logging to a real `mlflow server`."""

import csv
import io
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from nnlab.paths import CONF_DIR
from tests.commands import BIN, run_cli, spawn_cli, wait_for
from tests.servers import mlflow_server

TINY = [
    "trainer.max_epochs=3",
    "data.n_samples=160",
    "trainer.progress=none",
    "tracking.log_model=false",
]


def sweep_runs(uri):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("nnlab")
    runs = client.search_runs([exp.experiment_id]) if exp else []
    parents = [r for r in runs if r.data.tags.get("nnlab.sweep") == "true"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def read_csv(client, run_id, path="sweep_summary.csv"):
    local = client.download_artifacts(run_id, path)
    with open(local) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_sweep_is_one_parent_with_children_summary_and_best(store):
    proc = spawn_cli(
        "nnlab-train",
        "-m",
        "optimizer.lr=0.003,0.03",
        "model.activation=relu,tanh",
        *TINY,
        check=True,
    )
    client, (parent,), children = sweep_runs(store)
    assert len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {
        (c.data.params["optimizer.lr"], c.data.params["model.activation"]) for c in children
    } == {("0.003", "relu"), ("0.003", "tanh"), ("0.03", "relu"), ("0.03", "tanh")}
    assert parent.info.status == "FINISHED"
    assert parent.data.params["sweep.optimizer.lr"] == "0.003,0.03"
    rows = read_csv(client, parent.info.run_id)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"FINISHED"}
    assert {"optimizer.lr", "model.activation", "objective", "test/acc"} <= set(rows[0])
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert plots == {
        "plots/objective_vs_lr.png",
        "plots/objective_heatmap.png",
        "plots/curves.png",
        "plots/decision_boundaries.png",
    }
    best = min(children, key=lambda c: c.data.metrics["val/loss"])
    assert parent.data.tags["nnlab.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best/objective"] == best.data.metrics["val/loss"]
    # The parent's metric columns compare sweeps: job counts and the best job's test metrics.
    assert parent.data.metrics["jobs/finished"] == 4 and parent.data.metrics["jobs/failed"] == 0
    assert parent.data.metrics["best/test/acc"] == best.data.metrics["test/acc"]
    # What the UI shows: names lead with the swept values; the parent says what was swept,
    # and its description is the sweep's table, a linked line per job, the best marked.
    assert parent.info.run_name == "sweep: lr × activation"
    assert {c.info.run_name for c in children} == {
        f"lr={lr} {act} · moons 2-10-5-1" for lr in ("0.003", "0.03") for act in ("relu", "tanh")
    }
    table = parent.data.tags["mlflow.note.content"]
    for child in children:
        line = next(ln for ln in table.splitlines() if child.info.run_id in ln)
        assert f"[{child.info.run_name}](#/experiments/" in line
        assert ("★" in line) == (child.info.run_id == best.info.run_id)
    for child in children:
        note = child.data.tags["mlflow.note.content"]
        assert "**Result:**" in note and parent.info.run_id in note  # linked to its sweep
    # The console: each job its own URL; the store and the sweep's URL once, at the end.
    for child in children:
        assert f"/runs/{child.info.run_id}?workflowType=machine_learning" in proc.stdout
    assert proc.stdout.count("  store ") == 1 and proc.stdout.count("  browse ") == 1
    (sweep_line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("  sweep ")]
    assert sweep_line.endswith(f"/runs/{parent.info.run_id}?workflowType=machine_learning")


def overrides(run) -> dict[str, str]:
    from nnlab.report.tables import parse_overrides

    return parse_overrides(run.data.tags["mlflow.nnlab.overrides"])


@pytest.mark.slow
def test_diverging_and_erroring_jobs_fail_alone_and_the_sweep_goes_on(store):
    # lr=1e8 diverges; accelerator=tpu raises inside Lightning (no TPU anywhere here).
    proc = run_cli(
        "nnlab-train",
        "-m",
        "data=sine",
        "optimizer=sgd",
        "optimizer.lr=0.1,1e8",
        "trainer.accelerator=cpu,tpu",
        *TINY,
    )
    assert proc.returncode == 0, proc.stderr
    client, (parent,), children = sweep_runs(store)
    status = {
        (c.data.params["optimizer.lr"], overrides(c)["trainer.accelerator"]): (
            c.info.status,
            c.data.tags.get("nnlab.error", ""),
        )
        for c in children
    }
    assert status[("0.1", "cpu")][0] == "FINISHED"
    assert status[("100000000.0", "cpu")][0] == "FAILED"
    assert "TrainingDiverged" in status[("100000000.0", "cpu")][1]
    assert status[("0.1", "tpu")][0] == "FAILED" and status[("0.1", "tpu")][1]
    rows = read_csv(client, parent.info.run_id)
    assert sorted(r["status"] for r in rows) == ["FAILED", "FAILED", "FAILED", "FINISHED"]
    assert any("TrainingDiverged" in r["error"] for r in rows)
    assert parent.info.status == "FINISHED"
    assert "training diverged" in proc.stderr


@pytest.mark.slow
def test_sweep_where_every_job_fails_exits_nonzero(store):
    proc = run_cli("nnlab-train", "-m", "data=sine", "optimizer=sgd", "optimizer.lr=1e8,1e9", *TINY)
    assert proc.returncode != 0
    _, (parent,), children = sweep_runs(store)
    assert parent.info.status == "FAILED" and len(children) == 2
    assert {c.info.status for c in children} == {"FAILED"}


@pytest.mark.slow
def test_sigint_during_a_sweep_leaves_nothing_running(store):
    proc = subprocess.Popen(
        [
            str(BIN / "nnlab-train"),
            "-m",
            "optimizer.lr=0.01,0.1",
            "trainer.max_epochs=100000",
            "trainer.progress=none",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    store_file = store.removeprefix("sqlite:///")
    wait_for(  # the first job is training
        lambda: os.path.exists(store_file) and sweep_runs(store)[2], proc, "a job started"
    )
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    _, (parent,), children = sweep_runs(store)
    assert parent.info.status == "KILLED"
    # The two jobs train as one population (the nnlab_population sweeper): both were running.
    assert [c.info.status for c in children] == ["KILLED", "KILLED"]


@pytest.mark.slow
def test_two_parallel_workers_lose_no_run(store):
    lrs = ",".join(str(x) for x in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05))
    proc = spawn_cli(
        "nnlab-train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"optimizer.lr={lrs}",
        "model.activation=relu,tanh",
        *TINY,
        "tracking.log_plots=false",
        check=True,
    )
    client, (parent,), children = sweep_runs(store)
    assert len(children) == 12 and {c.info.status for c in children} == {"FINISHED"}
    worker_pids = {c.data.tags["mlflow.nnlab.pid"] for c in children} - {
        parent.data.tags["mlflow.nnlab.pid"]
    }
    assert len(worker_pids) >= 2  # the jobs ran in the joblib workers, not the launcher
    assert "locked" not in proc.stderr.lower()
    for c in children:
        assert len(client.get_metric_history(c.info.run_id, "train/loss")) == 3
    assert len(read_csv(client, parent.info.run_id)) == 12


@pytest.mark.slow
def test_skip_finished_skips_jobs_already_done(store):
    args = ["-m", "optimizer.lr=0.01,0.1", *TINY, "tracking.skip_finished=true"]
    run_cli("nnlab-train", *args, check=True)
    again = run_cli("nnlab-train", *args, check=True)
    _, parents, children = sweep_runs(store)
    assert len(parents) == 2 and len(children) == 2  # the second sweep trained nothing
    assert again.stdout.count("skipped") == 2
    second = max(parents, key=lambda p: p.info.start_time)
    rows = read_csv(MlflowClient(store), second.info.run_id)
    assert [r["status"] for r in rows] == ["SKIPPED", "SKIPPED"]
    assert second.data.tags["nnlab.jobs_failed"] == "0" and second.info.status == "FINISHED"
    assert {r["run_id"] for r in rows} == {c.info.run_id for c in children}


@pytest.mark.slow
def test_optuna_sweep_runs_trials_as_children(store):
    run_cli("nnlab-train", "-m", "sweep=optuna", "hydra.sweeper.n_trials=3", *TINY, check=True)
    _, (parent,), children = sweep_runs(store)
    assert len(children) == 3 and parent.info.status == "FINISHED"
    assert "optuna" in parent.data.tags["mlflow.nnlab.sweeper"].lower()
    assert all(math.isfinite(c.data.metrics["val/loss"]) for c in children)
    plots = {a.path for a in MlflowClient(store).list_artifacts(parent.info.run_id, "plots")}
    assert "plots/objective_vs_trial.png" in plots  # the search's history, best so far


@pytest.mark.parametrize(
    "preset, key",
    [
        ("learning_rates", "optimizer.lr"),
        ("activations", "model.activation"),
        ("architectures", "model.hidden"),
        ("backends", "backend"),
        ("l2", "optimizer.weight_decay"),
        ("optuna", "optimizer.lr"),
    ],
)
def test_sweep_presets_compose(preset, key):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"sweep={preset}"], return_hydra_config=True)
    assert key in cfg.hydra.sweeper.params


@pytest.mark.slow
def test_sweep_logs_to_a_real_tracking_server(tmp_path, migrated_store):
    import shutil

    shutil.copy(migrated_store, tmp_path / "server.db")
    served = tmp_path / "server-artifacts"
    backend = ["--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"]
    with mlflow_server(
        "server", *backend, "--artifacts-destination", str(served), "--workers", "1"
    ) as uri:
        run_cli(
            "nnlab-train",
            "-m",
            "optimizer.lr=0.01,0.1",
            *TINY,
            check=True,
            env={"MLFLOW_TRACKING_URI": uri, "NNLAB_HYDRA_DIR": str(tmp_path / "h")},
        )
        client, (parent,), children = sweep_runs(uri)
        assert len(children) == 2 and parent.info.status == "FINISHED"
        assert {c.info.status for c in children} == {"FINISHED"}
        rows = read_csv(client, parent.info.run_id)
        assert len(rows) == 2
        # Every child's files went through the server into its artifact folder, not to a
        # local mlruns/: the same bytes the client reads back.
        for child in children:
            (stored,) = served.glob(f"**/{child.info.run_id}/artifacts/config.yaml")
            fetched = client.download_artifacts(child.info.run_id, "config.yaml", str(tmp_path))
            assert stored.read_bytes() == Path(fetched).read_bytes()
            assert list(served.glob(f"**/{child.info.run_id}/artifacts/plots/curves.png"))


@pytest.mark.slow
def test_report_prints_the_latest_sweep_and_writes_csv_and_figures(store, tmp_path):
    run_cli("nnlab-train", "-m", "optimizer.lr=0.003,0.03", *TINY, check=True)
    out = run_cli(
        "nnlab-report",
        "--csv",
        str(tmp_path / "t.csv"),
        "--plots",
        str(tmp_path / "figs"),
        "--sort",
        "objective",
        check=True,
    )
    assert "optimizer.lr" in out.stdout and "best:" in out.stdout
    table = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    rows = [r for r in table if r["level"] == "run"]  # then one row per group (each n=1)
    assert len(rows) == 2 and [r["n"] for r in table if r["level"] == "group"] == ["1", "1"]
    assert [float(r["objective"]) for r in rows] == sorted(float(r["objective"]) for r in rows)
    assert (tmp_path / "figs" / "objective_vs_lr.png").exists()
    filtered = run_cli("nnlab-report", "--runs", "--filter", "optimizer.lr=0.03", check=True)
    assert "lr=0.03" in filtered.stdout and "lr=0.003" not in filtered.stdout
    bad = run_cli("nnlab-report", "-e", "nope")
    assert bad.returncode == 2 and "nope" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_report_imports_no_torch():
    code = (
        "import sys, nnlab.cli.report, nnlab.report.tables, nnlab.report.groups, "
        "nnlab.report.dashboard; "
        "sys.exit(int(any(m in sys.modules for m in ('torch', 'pytorch_lightning'))))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
