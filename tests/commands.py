"""nnlab's console scripts as a test calls them: in this process (`run_cli`) or as a real child
process (`spawn_cli`); the scripts in scripts/ in this process (`run_script`). All return a
`subprocess.CompletedProcess` with the exit code, stdout and stderr, so a test reads the same
whichever it uses.

Why two: a child process pays the 7-11 s import of the training stack every time; in-process the
test process pays it once. A test spawns only where the process boundary is what it tests:
signals and exit codes of a killed process, lazy imports, two processes agreeing, launchers
that start their own processes (joblib, Ray, submitit), servers. A multirun on Hydra's basic
launcher runs its jobs one after another in the calling process, so `run_cli` runs it as the
executable would. Each group of tests keeps one `spawn_cli` case, so the real executable's
one-line stderr and exit code stay checked end to end. Tests that spawn are marked `slow`;
conftest.py fails a test that spawns unmarked.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import runpy
import subprocess
import sys
import time
import traceback
from importlib.metadata import entry_points
from pathlib import Path

BIN = Path(sys.executable).parent
MULTIRUN_FLAGS = ("-m", "--multirun")
LAUNCHER_OVERRIDE = "hydra/launcher="


def starts_its_own_processes(args: tuple[str, ...]) -> bool:
    """A multirun whose launcher is not Hydra's basic one (the default, which runs the jobs in
    the calling process): joblib, Ray and submitit start processes of their own."""
    multirun = any(a in MULTIRUN_FLAGS for a in args)
    launchers = [a.removeprefix(LAUNCHER_OVERRIDE) for a in args if a.startswith(LAUNCHER_OVERRIDE)]
    return multirun and any(launcher != "basic" for launcher in launchers)


def spawn_cli(
    *args: str, timeout: float = 300, check: bool = False, **kwargs
) -> subprocess.CompletedProcess:
    """Run an nnlab console script (e.g. 'nnlab-train') as a user would: its own process."""
    env = {**os.environ, **kwargs.pop("env", {})}
    proc = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def console_script(name: str):
    """The function the installed `name` executable calls (pyproject's [project.scripts]), less
    its quick exit: each entry runs its module's `main` and then ends the process without the
    interpreter's teardown (nnlab.quick_exit), which would end this one."""
    (found,) = entry_points(group="console_scripts", name=name)
    entry = found.load()
    return vars(sys.modules[entry.__module__])["main"]


def exit_status(code) -> tuple[int, str]:
    """What the interpreter makes of `sys.exit(code)`: the status, and text it prints."""
    if code is None:
        return 0, ""
    if isinstance(code, int):
        return code, ""
    return 1, f"{code}\n"


def hide_logging_handlers():
    """Hide the handlers this process has made so far from the app, as a fresh process has none.
    Hydra configures logging with dictConfig, which closes every handler in the process; one
    whose stream is not the current sys.stderr closes that stream (absl's, created by
    TensorFlow, would close pytest's capture file while the app's stderr is redirected)."""
    saved = (logging.root.handlers[:], logging.root.level, logging._handlerList[:])
    logging.root.handlers.clear()
    logging._handlerList.clear()
    return saved


def restore_logging_handlers(saved) -> None:
    handlers, level, handler_list = saved
    for handler in logging.root.handlers:
        handler.close()  # the app's own, writing to the captured output
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)
    logging._handlerList[:] = handler_list


def run_cli(
    *args: str, check: bool = False, env: dict[str, str] | None = None, timeout: float = 0
) -> subprocess.CompletedProcess:
    """Run an nnlab console script inside this process, as the executable would run it: the
    same entry function, sys.argv, environment and exit status; stdout and stderr captured.

    What a fresh process would not carry over is reset: sys.argv and os.environ are restored,
    Hydra's global state is cleared and nnlab's once-per-process warnings are forgotten.
    What the command must not change is checked: matplotlib's settings. A command that left
    them changed would restyle every figure drawn after it in the same process (Optuna's
    plots did, with plt.style.use), so the call fails, naming the settings.
    `timeout` is accepted for symmetry with spawn_cli; pytest-timeout bounds an in-process call.
    """
    if starts_its_own_processes(args):
        raise ValueError("this launcher starts its own processes: use spawn_cli for it")
    return run_in_process(console_script(args[0]), [str(BIN / args[0]), *args[1:]], check, env)


def run_script(script: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    """Run one of scripts/*.py inside this process, as `python script args` would: its module
    run under another name than `__main__` (so it does not start itself), then its `main()`
    with sys.argv set; what run_cli resets and checks, this does too."""
    namespace = runpy.run_path(str(script), run_name="nnlab_script")
    return run_in_process(namespace["main"], [str(script), *args], check, None)


def run_in_process(
    entry, argv: list[str], check: bool, env: dict[str, str] | None
) -> subprocess.CompletedProcess:
    """`entry()` with `argv` as sys.argv and `env` added to os.environ: run_cli's and
    run_script's common part."""
    from hydra.core.global_hydra import GlobalHydra

    import nnlab.tracking.store.runs  # noqa: F401 (sets its MLflow defaults in os.environ, as a CLI does)
    from nnlab import console

    args = [Path(argv[0]).name, *argv[1:]]  # as the messages name the command
    saved_argv, saved_environ = sys.argv, dict(os.environ)
    saved_logging = hide_logging_handlers()
    out, err = io.StringIO(), io.StringIO()
    sys.argv = list(argv)
    os.environ.update(env or {})
    console._already_said.clear()
    styled = matplotlib_settings()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                returned = entry()
                if isinstance(returned, int) and returned:  # a script's `sys.exit(main())`
                    code = returned
            except SystemExit as done:
                code, text = exit_status(done.code)
                err.write(text)
            except Exception:  # what the interpreter does with an uncaught error
                traceback.print_exc(file=err)
                code = 1
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_environ)
        GlobalHydra.instance().clear()
        restore_logging_handlers(saved_logging)
    proc = subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    changed = sorted(k for k, v in matplotlib_settings().items() if styled.get(k) != v)
    if changed:
        raise AssertionError(f"{args} left matplotlib's settings changed: {changed[:10]}")
    return proc


def matplotlib_settings() -> dict:
    """matplotlib's rcParams but the backend (which figures drawn off-screen set to Agg)."""
    import matplotlib

    return {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}


def wait_for(condition, proc: subprocess.Popen, what: str, poll_s: float = 0.2):
    """Poll `condition()` until it returns something truthy, and return that: the store showing
    the state a test needs before it signals a process, instead of a guess of seconds. Fails
    at once with the process's output if the process ends first; a process that never gets
    there is ended by the test's pytest-timeout budget, which names the test."""
    while True:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(
                f"the process exited {proc.returncode} before {what}:\n{out or ''}\n{err or ''}"
            )
        time.sleep(poll_s)
