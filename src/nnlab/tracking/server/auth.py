"""Who may use the shared server: MLflow's own authentication app (`mlflow server --app-name
basic-auth`), set up with nnlab's defaults. nnlab writes no authentication of its own.

- On first start an admin `admin` gets a generated password, written to `admin.env` in the
  data folder (mode 600); MLflow creates the user from `auth.ini` (mode 600 too).
- Every user can READ every experiment (`default_permission = READ`); a user who creates an
  experiment MANAGEs it; `add_user` grants READ or EDIT on a named experiment.
- MLflow's users and permissions live in `basic_auth.db` in the data folder; its CSRF key in
  `flask-secret`.
"""

from __future__ import annotations

import os
from pathlib import Path

from nnlab.tracking.server.secrets import (
    PASSWORD_VAR,
    new_password,
    read_env_file,
    write_env_file,
    write_secret,
)

ADMIN = "admin"
PERMISSIONS = ("READ", "EDIT", "MANAGE")
AUTH_CACHE_S = 60


def admin_env_file(data: Path) -> Path:
    return data / "admin.env"


def user_env_file(data: Path, name: str) -> Path:
    return data / "users" / f"{name}.env"


def prepare_auth(data: Path, cert: Path | None = None) -> dict[str, str]:
    """The environment `mlflow server --app-name basic-auth` needs; creates the admin's
    credentials and MLflow's auth config on first use, keeps them afterwards."""
    env_file = admin_env_file(data)
    if not env_file.exists():
        write_env_file(env_file, ADMIN, new_password(), cert)
    password = read_env_file(env_file)[PASSWORD_VAR]
    ini = data / "auth.ini"
    write_secret(
        ini,
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{data / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        f"admin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Each password check is a deliberately slow hash (scrypt): without a cache every
        # request pays it, and 8 writers wrote 6x fewer runs (BENCHMARKS.md section 5). A
        # changed password or a deleted user reaches the other workers within this time.
        f"auth_cache_ttl_seconds = {AUTH_CACHE_S}\n",
    )
    # Flask's key for the auth app's CSRF tokens: kept, so that every worker and restart agree.
    key_file = data / "flask-secret"
    if not key_file.exists():
        write_secret(key_file, new_password())
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": key_file.read_text().strip(),
    }


def add_user(url: str, data: Path, name: str, experiment: str | None, permission: str) -> Path:
    """Create user `name` with a generated password (its own env file; an existing user gets
    a new one), and grant it `permission` on `experiment` (created if need be). Returns the
    env file."""
    # The server's auth client brings Flask: only the admin commands that call this need it.
    from mlflow.server.auth.client import AuthServiceClient
    from mlflow.tracking import MlflowClient

    admin = read_env_file(admin_env_file(data))
    os.environ.update(admin)  # the admin's name and password (and the certificate, with TLS)
    auth = AuthServiceClient(url)
    env_file = user_env_file(data, name)
    password = new_password()
    try:
        auth.get_user(name)
    except Exception:  # not there yet: the usual case
        auth.create_user(name, password)
    else:  # added before: a new password, so that the env file written now is the one
        auth.update_user_password(name, password)
    cert = admin.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    write_env_file(env_file, name, password, Path(cert) if cert else None)
    if experiment:
        client = MlflowClient(url)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        auth.grant_user_permission(name, "experiment", experiment_id, permission)
    return env_file
