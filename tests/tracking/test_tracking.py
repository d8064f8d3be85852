"""The store: where it is, and that a run always ends in a final state."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from nnlab.paths import PROJECT_ROOT
from nnlab.tracking.store.client import default_store_dir, tracking_uri
from nnlab.tracking.store.runs import open_run


def test_default_store_is_sqlite_in_the_project_mlruns(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # whatever the current directory
    assert default_store_dir() == PROJECT_ROOT / "mlruns"
    assert tracking_uri() == f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"


def test_config_key_beats_environment_beats_default(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/from-env.db")
    assert tracking_uri(None) == "sqlite:////tmp/from-env.db"
    assert tracking_uri("http://127.0.0.1:5005") == "http://127.0.0.1:5005"


def _only_run(uri):
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    return run


def test_run_that_raises_ends_failed_with_the_error(store):
    client = MlflowClient(store)
    with pytest.raises(ValueError), open_run(client, "t", store, "r", {}):
        raise ValueError("boom")
    run = _only_run(store)
    assert run.info.status == "FAILED" and run.data.tags["nnlab.error"] == "ValueError: boom"


def test_interrupted_run_ends_killed(store):
    client = MlflowClient(store)
    with pytest.raises(KeyboardInterrupt), open_run(client, "t", store, "r", {}):
        raise KeyboardInterrupt
    assert _only_run(store).info.status == "KILLED"


def test_run_records_process_and_host(store):
    import os

    with open_run(MlflowClient(store), "t", store, "r", {"nnlab.task": "binary"}):
        pass
    run = _only_run(store)
    assert run.info.status == "FINISHED"
    assert (
        run.data.tags["mlflow.nnlab.pid"] == str(os.getpid()) and run.data.tags["mlflow.nnlab.host"]
    )
    assert run.data.tags["nnlab.task"] == "binary"


def test_artifacts_of_a_local_store_live_beside_it(store):
    with open_run(MlflowClient(store), "t", store, "r", {}) as run_id:
        pass
    uri = MlflowClient(store).get_run(run_id).info.artifact_uri
    assert uri.startswith("file://" + store.removeprefix("sqlite:///").removesuffix("mlflow.db"))


def test_a_new_runs_first_artifact_goes_where_mlflow_puts_it_without_reading_the_run(
    store, tmp_path
):
    from nnlab.tracking.store.runs import open_runs

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("a")
    client = MlflowClient(store)
    reads = []
    store_reads_run = client._tracking_client.store.get_run
    client._tracking_client.store.get_run = lambda run_id: (
        reads.append(run_id) or store_reads_run(run_id)
    )
    with (
        open_run(client, "t", store, "r", {}) as alone,
        open_runs(client, "t", store, ["m0", "m1"], [{}, {}], [None, None]) as runs,
    ):
        for run_id in [alone, *runs.ids]:
            client.log_artifacts(run_id, str(tmp_path / "out"), "x")
    assert reads == []  # the runs' artifact folders were known from their creation
    fresh = MlflowClient(store)  # one that knows nothing: MLflow's own way, reading each run
    for run_id in [alone, *runs.ids]:
        assert [f.path for f in fresh.list_artifacts(run_id, "x")] == ["x/a.txt"]
        folder = Path(fresh.get_run(run_id).info.artifact_uri.removeprefix("file://"))
        assert (folder / "x" / "a.txt").read_text() == "a"


def test_a_sqlite_store_writes_ahead_and_a_copy_of_it_after_a_checkpoint_is_whole(tmp_path):
    """nnlab's sqlite stores are in WAL mode with synchronous=NORMAL (sqlite_wal): commits
    append to mlflow.db-wal instead of syncing the store each time. What a process committed
    is in the store for every other connection at once, and in mlflow.db itself once
    checkpointed."""
    import sqlite3

    from nnlab.tracking.store.client import get_client

    db = tmp_path / "mlflow.db"
    client = get_client(f"sqlite:///{db}")
    with open_run(client, "wal", f"sqlite:///{db}", "r", {}) as run_id:
        client.set_tag(run_id, "k", "v")
    with client._tracking_client.store.engine.connect() as con:  # MLflow's own engine
        assert con.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    with sqlite3.connect(db) as other:  # another connection sees the committed run
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("SELECT value FROM tags WHERE key='k'").fetchone()[0] == "v"
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = tmp_path / "copy.db"
    copy.write_bytes(db.read_bytes())  # the store file alone, as a backup would take it
    (run,) = MlflowClient(f"sqlite:///{copy}").search_runs(
        [MlflowClient(f"sqlite:///{copy}").get_experiment_by_name("wal").experiment_id]
    )
    assert run.data.tags["k"] == "v" and run.info.status == "FINISHED"


def test_a_store_on_a_network_filesystem_keeps_sqlites_default_journal(tmp_path):
    """WAL needs shared memory that NFS or SMB cannot give between machines: the mount that
    holds the store decides, the longest matching mount point winning."""
    from nnlab.tracking.store.sqlite_wal import NETWORK_FILESYSTEMS, filesystem_type

    mounts = "\n".join(
        [
            "/dev/vda / ext4 rw 0 0",
            "server:/export /mnt/lab nfs4 rw 0 0",
            "/dev/vdb /mnt/lab/local xfs rw 0 0",
            "//nas/share /mnt/my\\040share cifs rw 0 0",
        ]
    )
    kinds = {
        where: filesystem_type(Path(where), mounts)
        for where in ("/home/me/mlruns", "/mnt/lab/mlruns", "/mnt/lab/local/mlruns", "/mnt/labx")
    }
    assert kinds == {
        "/home/me/mlruns": "ext4",
        "/mnt/lab/mlruns": "nfs4",
        "/mnt/lab/local/mlruns": "xfs",  # a local disk mounted inside the share
        "/mnt/labx": "ext4",  # a sibling of the share's mount point, not inside it
    }
    assert filesystem_type(Path("/mnt/my share/mlruns"), mounts) == "cifs"
    assert {"nfs4", "cifs"} <= NETWORK_FILESYSTEMS and "ext4" not in NETWORK_FILESYSTEMS
