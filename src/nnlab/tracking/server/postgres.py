"""The shared server's PostgreSQL: on a data folder of its own, password-only over TCP.

- Over TCP (127.0.0.1, or every address with `--db-listen 0.0.0.0`) every role needs its
  password (scram-sha-256); the superuser has none, so it cannot log in over TCP at all. It
  is reached over the Unix socket, by the `postgres` OS user alone (peer authentication), to
  set things up.
- MLflow logs in as the role `mlflow`, which owns the `mlflow` database, with a generated
  password kept in the data folder's `pgpass` (libpq's password file, mode 600).
- A data folder made by an earlier nnlab (`-A trust`) is brought to these rules on start.

PostgreSQL refuses to run as root: as root, it runs as the `postgres` user (Debian's
`postgresql` package).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from nnlab.tracking.server.secrets import new_password, read_env_file, write_secret

DB_NAME = "mlflow"
DB_USER = "mlflow"
STUDY_DB = STUDY_USER = "optuna"
STUDY_STORAGE_VAR = "NNLAB_STUDY_STORAGE"
HBA = """# Written by nnlab's tracking server (src/nnlab/tracking/server/postgres.py).
# The superuser over the Unix socket only, as the postgres OS user; everyone over TCP with a
# password (the superuser has none: no TCP login).
local   all   postgres                 peer
host    all   all        127.0.0.1/32  scram-sha-256
host    all   all        ::1/128       scram-sha-256
"""


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        sys.exit(
            f"tracking_server: {name}: PostgreSQL is not installed (apt-get install postgresql)"
        )
    return found[-1]


def as_db_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def start_postgres(data: Path, port: int, listen: str = "127.0.0.1") -> tuple[Path, str]:
    """Start (creating on first use) the database; returns its folder and the URI MLflow
    uses, which holds no password (libpq reads it from PGPASSFILE, `pgpass_file(data)`).
    `listen`: 127.0.0.1, or 0.0.0.0 so that workers on other machines reach the Optuna
    database (password-only there too)."""
    pgdata, sockets = data / "pg", data / "pg-sockets"
    sockets.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        uid = pwd.getpwnam("postgres")
        for path in (data, sockets):
            os.chown(path, uid.pw_uid, uid.pw_gid)
        check_reachable(data)
    os.chmod(data, 0o700)  # the data folder is its owner's alone
    if not (pgdata / "PG_VERSION").exists():
        _run_or_exit(
            as_db_user(
                [
                    pg_bin("initdb"), "-D", str(pgdata), "-U", "postgres",
                    "--auth-local=peer", "--auth-host=scram-sha-256",
                ]
            ),
            "initdb",
        )  # fmt: skip
    # Written on every start, so that a folder an earlier version made with trust is closed.
    hba = pgdata / "pg_hba.conf"
    everywhere = (
        "host    all   all        0.0.0.0/0     scram-sha-256\n"
        "host    all   all        ::/0          scram-sha-256\n"
    )
    hba.write_text(HBA + (everywhere if listen != "127.0.0.1" else ""))
    if os.geteuid() == 0:
        uid = pwd.getpwnam("postgres")
        os.chown(hba, uid.pw_uid, uid.pw_gid)
    os.chmod(hba, 0o600)
    listen_on = "127.0.0.1" if listen == "127.0.0.1" else "*"
    options = f"-p {port} -k {sockets} -h {listen_on} -c password_encryption=scram-sha-256"
    _run_or_exit(
        as_db_user(
            [pg_bin("pg_ctl"), "-D", str(pgdata), "-o", options, "-l", str(data / "pg.log"),
             "-w", "start"]
        ),
        f"pg_ctl start (its log: {data / 'pg.log'})",
    )  # fmt: skip
    study_host = "127.0.0.1" if listen == "127.0.0.1" else socket.getfqdn()
    _ensure_mlflow_role(data, sockets, port, study_host)
    return pgdata, f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{port}/{DB_NAME}"


def check_reachable(data: Path) -> None:
    """As root, PostgreSQL runs as `postgres`, which must reach the data folder: a folder
    under a private one (/root, mode 700, or a private temp folder) is refused in one line."""
    done = subprocess.run(as_db_user(["test", "-w", str(data), "-a", "-x", str(data)]))
    if done.returncode != 0:
        blocked = next(
            (p for p in [*reversed(data.parents), data] if not os.stat(p).st_mode & 0o001),
            data,
        )
        sys.exit(
            f"tracking_server: --data {data}: the postgres user cannot reach it ({blocked} is "
            "private to its owner); choose a folder it can reach, e.g. --data "
            "/srv/nnlab-server (make server DATA=/srv/nnlab-server)"
        )


def _run_or_exit(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        sys.exit(f"tracking_server: {what} failed: {reason[-1] if reason else done.returncode}")


def pgpass_file(data: Path) -> Path:
    return data / "pgpass"


def _psql(sockets: Path, port: int, sql: str, database: str = "postgres") -> str:
    done = subprocess.run(
        as_db_user(
            [pg_bin("psql"), "-h", str(sockets), "-p", str(port), "-U", "postgres", "-d",
             database, "-v", "ON_ERROR_STOP=1", "-tA", "-f", "-"]
        ),
        input=sql,  # on stdin, not argv: a password in SQL never shows in the process list
        capture_output=True,
        text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"psql: {done.stderr.strip()}")
    return done.stdout.strip()


def _ensure_mlflow_role(data: Path, sockets: Path, port: int, study_host: str) -> None:
    """The `mlflow` role, with the password in `pgpass` (a new one when the file is new), and
    its database; a database an earlier version made as the superuser is handed over. Also
    the `optuna` role and database for Optuna studies (`optuna_env_file`)."""
    passfile = pgpass_file(data)
    password = _role(sockets, port, DB_USER, DB_NAME, _kept_password(passfile))
    write_secret(passfile, f"127.0.0.1:*:{DB_NAME}:{DB_USER}:{password}\n")
    study_file = optuna_env_file(data)
    kept = read_env_file(study_file)[STUDY_STORAGE_VAR] if study_file.exists() else None
    password = _role(sockets, port, STUDY_USER, STUDY_DB, _password_in_url(kept))
    url = f"postgresql+psycopg2://{STUDY_USER}:{password}@{study_host}:{port}/{STUDY_DB}"
    write_secret(study_file, f"{STUDY_STORAGE_VAR}={url}\n")


def optuna_env_file(data: Path) -> Path:
    """`NNLAB_STUDY_STORAGE=<URL>`: the database nnlab's Optuna sweeper keeps its studies in
    (conf/hydra/sweeper/nnlab_optuna.yaml reads the variable), for workers on this host."""
    return data / "optuna.env"


def _kept_password(passfile: Path) -> str | None:
    return passfile.read_text().strip().rsplit(":", 1)[-1] if passfile.exists() else None


def _password_in_url(url: str | None) -> str | None:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1] if url else None


def _role(sockets: Path, port: int, role: str, database: str, password: str | None) -> str:
    """Role `role` logging in with `password` (a new one if None), owning `database`."""
    password = password or new_password()
    exists = _psql(sockets, port, f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'")
    verb = "ALTER" if exists == "1" else "CREATE"
    _psql(sockets, port, f"{verb} ROLE {role} LOGIN PASSWORD '{password}'")
    if _psql(sockets, port, f"SELECT 1 FROM pg_database WHERE datname = '{database}'") != "1":
        _psql(sockets, port, f"CREATE DATABASE {database} OWNER {role}")
    else:  # made by an earlier nnlab, owned by the superuser
        _psql(sockets, port, f"ALTER DATABASE {database} OWNER TO {role}")
        _psql(
            sockets,
            port,
            "DO $$ DECLARE r record; BEGIN "
            "FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v') LOOP "
            f"EXECUTE 'ALTER TABLE public.' || quote_ident(r.relname) || ' OWNER TO {role}'; "
            f"END LOOP; END $$; ALTER SCHEMA public OWNER TO {role};",
            database,
        )
    return password


def stop_postgres(pgdata: Path) -> None:
    subprocess.run(
        as_db_user([pg_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"]),
        capture_output=True,
    )
