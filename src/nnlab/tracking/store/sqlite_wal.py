"""sqlite stores in write-ahead-log mode: a store write costs a half to a third of what it did.

In its default rollback-journal mode sqlite syncs the database file to disk at every commit,
and MLflow commits once per call: a tag, a batch of metrics, a new run. Measured here
(benchmarks/sqlite_journal.py): set_tag 2.9 -> 0.85 ms, log_batch of 7 metrics 6.6 -> 3.7
ms, create_run 6.5 -> 4.6 ms. A run flushes its curves every second and writes ~15 such
calls for its outputs, so the issue's 20-job sweep trained one by one took 92 s, not 141.

- `journal_mode=WAL`: commits append to `mlflow.db-wal` beside the store, which sqlite folds
  into the store itself from time to time and when the last connection closes. Readers (the
  UI, a report) no longer wait for a writer, nor writers for readers. The mode is a property
  of the file: once set, every process that opens the store uses it.
- `synchronous=NORMAL` (per connection): the log is synced at checkpoints, not at every
  commit. A process that is killed loses nothing it committed; a power cut or an OS crash
  can lose the last commits, never the consistency of the store.

WAL needs sqlite's shared memory, which network filesystems (NFS, SMB, Lustre, ...) do not
give between machines: a store on one keeps sqlite's default journal (on a cluster the
tracking server belongs anyway, README "Beyond one machine").

Applied to every sqlite connection SQLAlchemy opens in a process that imports this module
(nnlab.tracking.store.client imports it): MLflow's own engine included, which nnlab does not
create. A store that cannot switch (read-only, locked by another writer) keeps its mode.

sqlite folds the log back into the store, and removes it, when the store's last connection
closes. nnlab's commands end without the interpreter's teardown (nnlab.quick_exit), which
is what used to close them: the engines this process used are closed by an exit handler
instead, so a command leaves `mlflow.db` whole, without `-wal` and `-shm` files beside it.
"""

from __future__ import annotations

import atexit
import sqlite3
import weakref
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

NETWORK_FILESYSTEMS = {
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
    "fuse.sshfs", "fuse.glusterfs", "fuse.ceph", "9p",
}  # fmt: skip


def filesystem_type(path: Path, mounts: str) -> str | None:
    """The type of the filesystem holding `path`, from /proc/mounts' text: the mount point
    that is the longest prefix of the path wins."""
    best, kind = "", None
    resolved = str(path.resolve())
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def on_a_network_filesystem(db: Path) -> bool:
    try:
        mounts = Path("/proc/mounts").read_text()
    except OSError:
        return False  # not Linux: nothing to tell; WAL as on any local disk
    return filesystem_type(db.parent, mounts) in NETWORK_FILESYSTEMS


# Every engine that has handed out a connection in this process (weakly: one that is dropped
# closes its own connections).
_engines_used: weakref.WeakSet[Engine] = weakref.WeakSet()


@event.listens_for(Engine, "engine_connect")
def _note_engine(connection) -> None:
    _engines_used.add(connection.engine)


@atexit.register
def _close_engines() -> None:
    for engine in list(_engines_used):
        engine.dispose()  # closes the pooled connections: sqlite checkpoints the log


@event.listens_for(Engine, "connect")
def _write_ahead_log(connection, _record) -> None:
    if not isinstance(connection, sqlite3.Connection):
        return  # PostgreSQL and other databases keep their own settings
    cursor = connection.cursor()
    try:
        files = [row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"]
        if not files or not files[0] or on_a_network_filesystem(Path(files[0])):
            return  # in memory, or on a filesystem WAL cannot share: the default journal
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error:
        pass  # read-only or locked now: the store works as it is, only slower
    finally:
        cursor.close()
