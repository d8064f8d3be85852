"""Servers a test starts for real (`mlflow ui`, `mlflow server`): on a port the server chose
itself, found from what it printed, so no two tests race for a port picked in advance."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from nnlab.env import MLFLOW_SERVER_DEFAULTS, environ_snapshot
from nnlab.paths import PROJECT_ROOT
from nnlab.tracking.server.secrets import read_env_file
from tests.commands import BIN

UVICORN_READY = re.compile(r"Uvicorn running on (http://[\d.]+:\d+)")
START_TIMEOUT_S = 120
TRACKING_SERVER = PROJECT_ROOT / "scripts" / "tracking_server.py"
READY = re.compile(r"^ready: (\S+)")
CREDENTIALS = re.compile(r"^credentials: (\S+)")
SERVER_START_TIMEOUT_S = 300  # a fresh PostgreSQL and its migration: ~40 s, more under load


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
    environment = {**environ_snapshot(), **MLFLOW_SERVER_DEFAULTS, **(env or {})}
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


class TrackingServer:
    """scripts/tracking_server.py as a user starts it; restartable on the same data."""

    def __init__(self, *options: str):
        self.options = list(options)  # e.g. --no-auth, --self-signed
        self.credentials: dict[str, str] = {}
        # PostgreSQL runs as the `postgres` user when the tests run as root: its data must be
        # in a folder that user can reach (pytest's tmp_path is private to root).
        self.data = Path(tempfile.mkdtemp(prefix="nnlab-server-", dir="/tmp"))
        self.port, self.db_port = distinct_free_ports(2)
        self.url = f"http://127.0.0.1:{self.port}"  # https with --self-signed, once ready
        self.proc = None

    def start(self) -> None:
        command = [sys.executable, str(TRACKING_SERVER), "--data", str(self.data)]
        command += ["--port", str(self.port), "--db-port", str(self.db_port), "--workers", "2"]
        command += self.options
        self.log = open(self.data.parent / f"{self.data.name}.log", "a")  # noqa: SIM115
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log, text=True)
        # "ready: <url>" once MLflow answers, then (authentication on) "credentials: <file>";
        # a server that never says it fails the test.
        auth = "--no-auth" not in self.options
        seen: list[str] = []
        last = read_lines_until(
            self.proc.stdout, CREDENTIALS if auth else READY, SERVER_START_TIMEOUT_S, seen
        )
        self.url = next(READY.match(line) for line in seen if READY.match(line)).group(1)
        if auth:
            self.credentials_file = Path(last.group(1))
            self.credentials = read_env_file(self.credentials_file)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=120)

    def remove(self) -> None:
        """Stop it and delete its data folder and log: each server's PostgreSQL cluster is
        ~75 MB in /tmp, and a test session starts two."""
        self.stop()
        if getattr(self, "log", None) is not None:
            self.log.close()
            Path(self.log.name).unlink(missing_ok=True)
        shutil.rmtree(self.data, ignore_errors=True)

    def postgres_running(self) -> bool:
        found = subprocess.run(["pgrep", "-f", f"postgres -D {self.data}/pg"], capture_output=True)
        return found.returncode == 0

    @contextmanager
    def credentials_in_environment(self, **changes: str) -> Iterator[None]:
        """The admin's credentials (or `changes`) in os.environ, as `set -a; . admin.env` sets
        them, for this process and the processes it starts; restored afterwards."""
        values = {**self.credentials, **changes}
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
