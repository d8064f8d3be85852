#!/usr/bin/env python
"""A shared MLflow tracking server on PostgreSQL, with artifacts served over HTTP, that lets in
only those who belong.

    .venv/bin/python scripts/tracking_server.py [--data DIR] [--host 0.0.0.0] [--port 5000]
    make server                       # the same, data in ./server-data, on 127.0.0.1:5000
    .venv/bin/python scripts/tracking_server.py add-user alice --experiment alice --permission EDIT

Starts a PostgreSQL server on a data folder of its own (nnlab.tracking.server.postgres:
password-only over TCP, the folder its owner's alone), then `mlflow server` on it with
`--serve-artifacts` (workers need no filesystem in common with it) and MLflow's
authentication app (nnlab.tracking.server.auth): on first start an admin with a generated
password, written to `<data>/admin.env`. Prints `ready: <url>`, then `credentials: <file>`.
A worker on any machine that reaches it:

    set -a; . server-data/admin.env; set +a          # or a user's users/<name>.env
    MLFLOW_TRACKING_URI=http://<host>:5000 nnlab-train -m ...

`--no-auth` serves without authentication (with a warning when bound beyond 127.0.0.1);
`--tls-cert/--tls-key`, or `--self-signed`, serve HTTPS. Ctrl-C or SIGTERM stops MLflow,
then PostgreSQL; nothing keeps running.
"""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

# MLflow's server imports a Starlette module that Starlette says it will drop: not ours to fix.
warnings.filterwarnings("ignore", message=".*starlette.middleware.wsgi is deprecated.*")

from nnlab.env import MLFLOW_SERVER_DEFAULTS  # noqa: E402
from nnlab.tracking.server.auth import PERMISSIONS, add_user, admin_env_file, prepare_auth  # noqa: E402
from nnlab.tracking.server.postgres import pgpass_file, start_postgres, stop_postgres  # noqa: E402
from nnlab.tracking.server.secrets import CERT_VAR, read_env_file, write_env_file  # noqa: E402


def wait_until_up(url: str, server: subprocess.Popen, cafile: Path | None, timeout_s=120) -> None:
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2, context=context):
                return
        except urllib.error.HTTPError:
            return  # it answers (an auth app may want credentials even here)
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"mlflow server did not answer at {url} within {timeout_s:.0f} s")


def self_signed_pair(data: Path, host: str) -> tuple[Path, Path]:
    """A certificate and key for `host` (and localhost), made once with openssl."""
    folder = data / "tls"
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not cert.exists():
        folder.mkdir(parents=True, exist_ok=True)
        names = sorted({host, "localhost", "127.0.0.1"} - {"0.0.0.0"})
        san = ",".join(f"IP:{n}" if n.replace(".", "").isdigit() else f"DNS:{n}" for n in names)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
             "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={names[0]}",
             "-addext", f"subjectAltName={san}"],
            check=True, capture_output=True,
        )  # fmt: skip
        os.chmod(key, 0o600)
    return cert, key


def serve(args) -> int:
    data = args.data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    cert = key = None
    if args.self_signed:
        cert, key = self_signed_pair(data, args.host)
    elif args.tls_cert:
        cert, key = args.tls_cert.resolve(), args.tls_key.resolve()
    pgdata, store = start_postgres(data, args.db_port, args.db_listen)
    artifacts = data / "artifacts"
    artifacts.mkdir(exist_ok=True)
    env = {
        **MLFLOW_SERVER_DEFAULTS,  # unless the environment sets them
        **os.environ,
        "PGPASSFILE": str(pgpass_file(data)),  # the database password, on no command line
    }
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", store,
        "--serve-artifacts", "--artifacts-destination", str(artifacts),
        "--host", args.host, "--port", str(args.port), "--workers", str(args.workers),
    ]  # fmt: skip
    if args.allowed_hosts:
        command += ["--allowed-hosts", args.allowed_hosts]
    if args.no_auth:
        if args.host != "127.0.0.1":
            print(
                f"tracking_server: warning: --no-auth on {args.host}: anyone who reaches port "
                f"{args.port} can read, change and delete every experiment",
                file=sys.stderr,
            )
    else:
        env.update(prepare_auth(data, cert))
        command += ["--app-name", "basic-auth"]
        admin = admin_env_file(data)
        values = read_env_file(admin)
        if cert is not None and values.get(CERT_VAR) != str(cert):  # TLS added later
            write_env_file(
                admin, values["MLFLOW_TRACKING_USERNAME"], values["MLFLOW_TRACKING_PASSWORD"], cert
            )
    # Requests in flight get 5 s when the server stops. Without a bound, one client's idle
    # keep-alive connection kept uvicorn "waiting for connections to close" until the 30 s
    # below ran out and it was killed.
    uvicorn_opts = "--timeout-graceful-shutdown 5"
    if cert is not None:
        uvicorn_opts += f" --ssl-certfile {cert} --ssl-keyfile {key}"
    command += ["--uvicorn-opts", uvicorn_opts]
    server = subprocess.Popen(
        command,
        env=env,
        stdout=sys.stderr,  # the server's chatter on stderr; stdout says only when it is ready
    )

    def stop(signum=None, frame=None):
        # Once: a second signal (a supervisor repeating it) must not cut the cleanup short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheme = "https" if cert is not None else "http"
    url = f"{scheme}://{'127.0.0.1' if args.host == '0.0.0.0' else args.host}:{args.port}"
    try:
        wait_until_up(url, server, cert)
        print(f"ready: {url}   (store {store}, artifacts {artifacts})", flush=True)
        if not args.no_auth:
            print(f"credentials: {admin_env_file(data)}", flush=True)
        server.wait()
        return server.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        stop_postgres(pgdata)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["add-user"]:
        return add_user_command(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("server-data"), help="database + artifacts")
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    p.add_argument("--port", type=int, default=5000, help="MLflow's port")
    p.add_argument("--db-port", type=int, default=5433, help="PostgreSQL's port")
    p.add_argument(
        "--db-listen",
        default="127.0.0.1",
        help="0.0.0.0: PostgreSQL reachable from other machines (password-only), for Optuna "
        "studies that workers elsewhere share (<data>/optuna.env names it)",
    )
    p.add_argument("--workers", type=int, default=4, help="MLflow server worker processes")
    p.add_argument("--no-auth", action="store_true", help="serve without authentication")
    p.add_argument("--allowed-hosts", help="Host headers MLflow accepts (its --allowed-hosts)")
    p.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="... and this key")
    p.add_argument("--self-signed", action="store_true", help="HTTPS with a certificate made here")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    return serve(args)


def add_user_command(argv) -> int:
    p = argparse.ArgumentParser(
        prog="tracking_server.py add-user",
        description="Add a user with a generated password, written to <data>/users/<name>.env",
    )
    p.add_argument("name")
    p.add_argument("--experiment", help="the experiment to grant a permission on")
    p.add_argument("--permission", default="EDIT", choices=PERMISSIONS)
    p.add_argument("--data", type=Path, default=Path("server-data"))
    p.add_argument("--url", default="http://127.0.0.1:5000", help="the running server")
    args = p.parse_args(argv)
    env_file = add_user(args.url, args.data.resolve(), args.name, args.experiment, args.permission)
    granted = f", {args.permission} on experiment {args.experiment}" if args.experiment else ""
    print(f"user {args.name} added{granted}; credentials: {env_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
