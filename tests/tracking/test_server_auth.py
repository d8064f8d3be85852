"""The shared server lets in only those who belong (scripts/tracking_server.py; MLflow's own
authentication app and PostgreSQL's password authentication): a real PostgreSQL and a real
`mlflow server --app-name basic-auth`, over HTTPS with a self-signed certificate, started and
stopped by the tests. (Authentication over plain HTTP: tests/tracking/test_tracking_server.py's
server.)"""

import os
import stat
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from nnlab.tracking.server.postgres import as_db_user, pg_bin
from nnlab.tracking.server.secrets import read_env_file
from tests.commands import run_cli, spawn_cli
from tests.servers import TRACKING_SERVER, TrackingServer

pytestmark = pytest.mark.slow
TINY = ["trainer.max_epochs=2", "data.n_samples=200", "trainer.progress=none"]


@pytest.fixture(scope="module")
def server():
    s = TrackingServer("--self-signed")
    s.start()
    try:
        yield s
    finally:
        s.remove()


def add_user(server, name: str, experiment: str, permission: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, str(TRACKING_SERVER), "add-user", name, "--experiment", experiment,
         "--permission", permission, "--data", str(server.data), "--url", server.url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    env_file = Path(done.stdout.strip().rsplit("credentials: ", 1)[1])
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    return read_env_file(env_file)


def client_as(server, credentials: dict[str, str]) -> MlflowClient:
    os.environ.update(credentials)  # MLflow's client reads them from the environment
    return MlflowClient(server.url)


def test_the_admins_credentials_are_its_owners_alone_in_env_file_form(server):
    assert server.credentials_file.parent == server.data
    assert stat.S_IMODE(server.credentials_file.stat().st_mode) == 0o600
    assert server.credentials["MLFLOW_TRACKING_USERNAME"] == "admin"
    assert len(server.credentials["MLFLOW_TRACKING_PASSWORD"]) >= 32
    assert stat.S_IMODE(server.data.stat().st_mode) == 0o700


def test_unauthenticated_401_read_user_403_edit_user_only_where_granted(server):
    search = f"{server.url}/api/2.0/mlflow/experiments/search"
    cert = server.credentials["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    unauthenticated = requests.get(search, params={"max_results": 1}, timeout=30, verify=cert)
    assert unauthenticated.status_code == 401
    admin = (
        server.credentials["MLFLOW_TRACKING_USERNAME"],
        server.credentials["MLFLOW_TRACKING_PASSWORD"],
    )
    answer = requests.get(search, params={"max_results": 1}, auth=admin, timeout=30, verify=cert)
    assert answer.status_code == 200

    saved = dict(os.environ)
    try:
        reader = add_user(server, "reader", "shared", "READ")
        writer = add_user(server, "writer", "mine", "EDIT")
        client = client_as(server, server.credentials)
        shared = client.get_experiment_by_name("shared").experiment_id
        mine = client.get_experiment_by_name("mine").experiment_id

        as_reader = client_as(server, reader)
        assert as_reader.get_experiment(shared).name == "shared"  # reading is allowed
        with pytest.raises(MlflowException) as refused:
            as_reader.create_run(shared)
        assert refused.value.get_http_status_code() == 403

        as_writer = client_as(server, writer)
        run = as_writer.create_run(mine)  # where it was granted EDIT
        as_writer.log_metric(run.info.run_id, "m", 1.0)
        with pytest.raises(MlflowException) as refused:
            as_writer.create_run(shared)  # where it may only read
        assert refused.value.get_http_status_code() == 403
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_postgres_refuses_a_connection_without_the_password(server):
    for user in ("postgres", "mlflow"):
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(
                host="127.0.0.1", port=server.db_port, user=user, dbname="mlflow",
                connect_timeout=10, passfile="/dev/null",
            )  # fmt: skip
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(
                host="127.0.0.1", port=server.db_port, user=user, dbname="mlflow",
                password="guessed", connect_timeout=10, passfile="/dev/null",
            )  # fmt: skip
    assert stat.S_IMODE((server.data / "pgpass").stat().st_mode) == 0o600


def test_a_sweep_lands_with_credentials_fails_in_one_line_without_and_leaks_no_password(
    server, tmp_path
):
    password = server.credentials["MLFLOW_TRACKING_PASSWORD"]
    env = {"MLFLOW_TRACKING_URI": server.url}
    with server.credentials_in_environment(**env):
        sweep = run_cli(  # credentials reach the workers of other launchers: test_tracking_server
            "nnlab-train", "-m", "model.activation=relu,tanh", "tracking.experiment=authed",
            *TINY,
        )  # fmt: skip
        assert sweep.returncode == 0, sweep.stderr[-3000:]
        client = MlflowClient(server.url)
        experiment = client.get_experiment_by_name("authed")
        runs = client.search_runs([experiment.experiment_id])
        assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        for child in children:
            assert [m.step for m in client.get_metric_history(child.info.run_id, "train/loss")] == [
                0,
                1,
            ]
            assert client.list_artifacts(child.info.run_id, "plots")
        before = len(client.search_experiments())

    for wrong in ({"MLFLOW_TRACKING_PASSWORD": "wrong"}, {}):
        with server.credentials_in_environment(**env, **wrong):
            if not wrong:  # no credentials at all
                for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                    os.environ.pop(key)
            refused = run_cli(
                "nnlab-train", "-m", "model.activation=relu,tanh",
                "tracking.experiment=refused", *TINY,
            )  # fmt: skip
        lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
        assert refused.returncode == 3 and len(lines) == 1, refused.stderr
        assert server.url in lines[0] and "MLFLOW_TRACKING_" in lines[0]
    with server.credentials_in_environment():
        assert len(MlflowClient(server.url).search_experiments()) == before  # nothing created

    # The password is nowhere in the store: not in the database, nor in any artifact.
    dump = subprocess.run(
        as_db_user([pg_bin("pg_dump"), "-h", str(server.data / "pg-sockets"),
                    "-p", str(server.db_port), "-U", "postgres", "mlflow"]),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "authed" in dump and password not in dump
    artifacts = [p for p in (server.data / "artifacts").rglob("*") if p.is_file()]
    assert len(artifacts) > 10
    assert not [p for p in artifacts if password.encode() in p.read_bytes()]


def test_an_optuna_search_keeps_its_study_in_the_servers_database(server):
    """The server's optuna.env names a database of its own for studies (password-protected,
    like MLflow's); with it and the admin's credentials in the environment, a search runs its
    trials through submitit, and neither password reaches the MLflow store."""
    study_env = read_env_file(server.data / "optuna.env")
    storage = study_env["NNLAB_STUDY_STORAGE"]
    study_password = storage.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    with server.credentials_in_environment(MLFLOW_TRACKING_URI=server.url, **study_env):
        search = spawn_cli(
            "nnlab-train", "-m", "hydra/sweeper=nnlab_optuna", "hydra/launcher=submitit_local",
            "optimizer=sgd",
            "optimizer.lr=interval(0.01,0.3)", "hydra.sweeper.n_trials=2",
            "tracking.experiment=searched", *TINY,
        )  # fmt: skip
        assert search.returncode == 0, search.stderr[-3000:]
        client = MlflowClient(server.url)
        runs = client.search_runs([client.get_experiment_by_name("searched").experiment_id])
    import optuna

    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.n_trials == 2
    (parent,) = [r for r in runs if r.data.tags.get("nnlab.sweep") == "true"]
    assert parent.data.tags["nnlab.optuna.storage"].count("***") == 1  # the password masked
    dump = subprocess.run(
        as_db_user([pg_bin("pg_dump"), "-h", str(server.data / "pg-sockets"),
                    "-p", str(server.db_port), "-U", "postgres", "mlflow"]),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "searched" in dump
    for secret in (study_password, server.credentials["MLFLOW_TRACKING_PASSWORD"]):
        assert secret not in dump


def test_https_with_a_self_signed_certificate(server):
    """--self-signed: the server speaks HTTPS (every test here went through it, verified with
    the certificate the admin's env file names); a worker without the certificate is told in
    one line what to set, before anything is created."""
    assert server.url.startswith("https://")
    cert = Path(server.credentials["MLFLOW_TRACKING_SERVER_CERT_PATH"])
    assert cert.parent == server.data / "tls" and cert.exists()
    with server.credentials_in_environment(MLFLOW_TRACKING_URI=server.url):
        os.environ.pop("MLFLOW_TRACKING_SERVER_CERT_PATH")
        refused = spawn_cli("nnlab-train", *TINY, "tracking.experiment=untrusted")
        os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(cert)
        names = [e.name for e in MlflowClient(server.url).search_experiments()]
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert refused.returncode == 3 and len(lines) == 1, refused.stderr
    assert "MLFLOW_TRACKING_SERVER_CERT_PATH" in lines[0]
    assert "untrusted" not in names


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands PostgreSQL to the postgres user")
def test_a_data_folder_postgres_cannot_reach_is_refused_in_one_line(tmp_path):
    """As root, PostgreSQL runs as `postgres`; pytest's tmp_path is private to root, as a clone
    under /root is. The server says so in one line instead of initdb's traceback."""
    private = tmp_path / "server-data"
    done = subprocess.run(
        [sys.executable, str(TRACKING_SERVER), "--data", str(private),
         "--port", "1", "--db-port", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert f"--data {private}: the postgres user cannot reach it" in lines[0]
    assert "Traceback" not in done.stderr and not (private / "pg").exists()
