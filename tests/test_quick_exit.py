"""A console command ends without the interpreter's teardown (nnlab.quick_exit), and loses
nothing to it: its exit status, its last output, the exit handlers and the threads the
interpreter would wait for, a sqlite store folded back into one file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from tests.commands import spawn_cli

PROGRAM = textwrap.dedent(
    """
    import atexit, sys, threading, time
    from concurrent.futures import ThreadPoolExecutor
    from nnlab.quick_exit import run_then_exit

    # An idle pool's worker, as MLflow's artifact uploads leave one: ended, not waited on.
    pool = ThreadPoolExecutor(1)
    pool.submit(print, end="").result()

    out = sys.argv[1]
    def main():
        atexit.register(lambda: open(out + ".handler", "w").write("ran"))
        def late():
            time.sleep(0.5)
            open(out + ".thread", "w").write("done")
        threading.Thread(target=late).start()  # not a daemon: the interpreter waits for it
        sys.stdout.write("x" * 100_000)  # buffered, no newline: only a flush writes it
        return {result}

    run_then_exit(main)
    print("never reached")
    """
)


def run_program(tmp_path, result: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM.format(result=result), str(tmp_path / "mark")],
        capture_output=True,
        text=True,
        timeout=60,  # a command that waits forever at exit fails here
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("result", "status", "stderr"),
    [
        ("None", 0, ""),
        ("3", 3, ""),
        ("sys.exit(4)", 4, ""),
        ("sys.exit('no: why')", 1, "no: why\n"),
    ],
)
def test_a_command_ends_with_its_status_output_handlers_and_threads(
    tmp_path, result, status, stderr
):
    proc = run_program(tmp_path, result)
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == "x" * 100_000  # the whole of it, and nothing after run_then_exit
    assert proc.stderr == stderr
    assert (tmp_path / "mark.handler").read_text() == "ran"
    assert (tmp_path / "mark.thread").read_text() == "done"


@pytest.mark.slow
def test_nnlab_train_leaves_its_store_whole_in_one_file(tmp_path):
    db = tmp_path / "store" / "mlflow.db"
    proc = spawn_cli(
        "nnlab-train",
        f"tracking.uri=sqlite:///{db}",
        "trainer.max_epochs=2",
        "data.n_samples=100",
        "trainer.progress=none",
        check=True,
    )
    assert "mlflow ui" in proc.stdout  # its output to the last line
    # The write-ahead log was folded back in by closing the store's connections at exit
    # (nnlab.tracking.store.sqlite_wal): the file alone holds the finished run.
    assert sorted(p.name for p in db.parent.iterdir()) == ["artifacts", "mlflow.db"]
    copy = tmp_path / "copy.db"
    copy.write_bytes(db.read_bytes())
    with sqlite3.connect(copy) as con:
        assert con.execute("select status from runs").fetchall() == [("FINISHED",)]
