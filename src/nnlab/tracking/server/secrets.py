"""The shared server's secrets, in its data folder only, each readable by its owner alone.

- `admin.env`: the MLflow admin's credentials, in env-file form, so that `set -a; . admin.env`
  sets up a worker (`MLFLOW_TRACKING_USERNAME`, `MLFLOW_TRACKING_PASSWORD`);
- `users/<name>.env`: each user's, the same form (scripts/tracking_server.py add-user);
- `auth.ini`: MLflow's basic-auth config (it names the admin password on first start);
- `pgpass`: the MLflow database user's PostgreSQL password, in libpq's password-file form,
  so that it is on no command line and in no URI.

Passwords are generated (`secrets.token_urlsafe`): 32 random bytes, nothing to guess.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

USERNAME_VAR = "MLFLOW_TRACKING_USERNAME"
PASSWORD_VAR = "MLFLOW_TRACKING_PASSWORD"
CERT_VAR = "MLFLOW_TRACKING_SERVER_CERT_PATH"


def new_password() -> str:
    return secrets.token_urlsafe(32)


def write_secret(path: Path, text: str) -> Path:
    """`text` into `path`, created with mode 600 (never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def write_env_file(path: Path, username: str, password: str, cert: Path | None = None) -> Path:
    lines = [f"{USERNAME_VAR}={username}", f"{PASSWORD_VAR}={password}"]
    if cert is not None:
        lines.append(f"{CERT_VAR}={cert}")
    return write_secret(path, "\n".join(lines) + "\n")


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values
