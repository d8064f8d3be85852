"""Servers a test starts for real (`mlflow ui`, `mlflow server`): on a port the server chose
itself, found from what it printed, so no two tests race for a port picked in advance."""

from __future__ import annotations

import queue
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from nnlab.env import environ_snapshot
from tests.commands import BIN

UVICORN_READY = re.compile(r"Uvicorn running on (http://[\d.]+:\d+)")
START_TIMEOUT_S = 120


def read_lines_until(stream, pattern: re.Pattern, timeout_s: float, seen: list[str]):
    """The first match of `pattern` in the lines of `stream`, read on a thread so that a
    server that never prints it fails the test after `timeout_s` instead of hanging it. The
    thread drains the stream afterwards, so a chatty server never blocks on a full pipe."""
    found: queue.Queue = queue.Queue()

    def pump():
        matched = False
        for line in stream:
            seen.append(line)
            if not matched and (m := pattern.search(line)):
                matched = True
                found.put(m)
        found.put(None)  # the stream closed: the process ended

    threading.Thread(target=pump, daemon=True).start()
    try:
        match = found.get(timeout=timeout_s)
    except queue.Empty:
        match = None
    if match is None:
        raise AssertionError(f"never printed {pattern.pattern!r}:\n{''.join(seen[-40:])}")
    return match


@contextmanager
def mlflow_server(*args: str, env: dict | None = None) -> Iterator[str]:
    """`mlflow <args> --port 0` (ui or server) on 127.0.0.1; yields its URL and stops it."""
    command = [str(BIN / "mlflow"), *args, "--host", "127.0.0.1", "--port", "0"]
    environment = {**environ_snapshot(), "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    with ExitStack() as stack:
        proc = subprocess.Popen(
            command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        stack.callback(stop, proc)
        seen: list[str] = []
        url = read_lines_until(proc.stderr, UVICORN_READY, START_TIMEOUT_S, seen).group(1)
        yield url


def stop(proc: subprocess.Popen, timeout_s: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def distinct_free_ports(n: int) -> list[int]:
    """n ports nothing listens on now, all different: held together, so two are never the
    same (for servers such as PostgreSQL that cannot choose their own)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def listening_addresses(port: int) -> list[str]:
    """The local addresses listening on TCP `port`, as /proc/net/tcp writes them."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return [
        r.split()[1] for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A"
    ]
