"""What nnlab's Ray launcher (hydra_plugins.nnlab_launchers.ray_launcher) needs that does not
import Ray: the environment every job gets, and whether the head answers. Light on purpose:
the sweep callback checks the head before it creates anything in the store."""

from __future__ import annotations

import os
import socket

# A server with authentication (scripts/tracking_server.py) needs the driver's credentials in
# every job; they travel in the task's runtime_env, which nnlab logs nowhere.
CREDENTIAL_VARS = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
)


def job_environment(tracking_uri: str | None) -> dict[str, str]:
    """The variables every job needs: the sweep protocol's, where the store is, and the
    credentials it takes."""
    # lazy: MLflow loads only when a Ray job is sent
    from nnlab.tracking.store import sweep_protocol
    from nnlab.tracking.store.client import tracking_uri as resolve

    credentials = {k: os.environ[k] for k in CREDENTIAL_VARS if os.environ.get(k)}
    return {
        **sweep_protocol.sweep_environment(),
        "MLFLOW_TRACKING_URI": resolve(tracking_uri),
        **credentials,
    }


def check_head(address: str | None, timeout_s: float = 10.0) -> str | None:
    """None if the Ray head at `address` ("host:port") answers, else why not, in one line.
    `address` None or "auto"/"local" starts a local Ray: nothing to check."""
    if not address or address in ("auto", "local") or address.startswith("ray://"):
        return None
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return None
    except (OSError, ValueError) as err:
        return f"hydra.launcher.ray.init.address={address}: no Ray head answers there ({err})"
