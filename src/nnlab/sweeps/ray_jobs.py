"""What nnlab's Ray launcher (hydra_plugins.nnlab_launchers.ray_launcher) needs that does not
import Ray: the environment every job gets, and whether the head answers. Light on purpose:
the sweep callback checks the head before it creates anything in the store."""

from __future__ import annotations


def job_environment(tracking_uri: str | None) -> dict[str, str]:
    """The variables every job needs: the sweep protocol's, and where the store is."""
    from nnlab.tracking.store import sweep_protocol
    from nnlab.tracking.store.runs import tracking_uri as resolve

    return {**sweep_protocol.sweep_environment(), "MLFLOW_TRACKING_URI": resolve(tracking_uri)}


def check_head(address: str | None, timeout_s: float = 10.0) -> str | None:
    """None if the Ray head at `address` ("host:port") answers, else why not, in one line.
    `address` None or "auto"/"local" starts a local Ray: nothing to check."""
    import socket

    if not address or address in ("auto", "local") or address.startswith("ray://"):
        return None
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return None
    except (OSError, ValueError) as err:
        return f"hydra.launcher.ray.init.address={address}: no Ray head answers there ({err})"
