"""A command ends without tearing the interpreter down.

When a Python program ends, the interpreter runs its exit handlers and then frees every
module and object one by one. With torch, Lightning and MLflow loaded that teardown took
1.6 s of a 3-epoch run's 9.6 s here (benchmarks/command_fixed_cost.py; ~3 s on a loaded
machine): longer than the run's training, for memory the operating system takes back at once
anyway. nnlab's console commands end the way the
interpreter would up to that teardown: they wait for the threads it would wait for, run the
exit handlers (MLflow's, logging's flush, temporary folders' clean-up), flush the output,
and then end the process.

Only the console entries do this, and the figure worker (nnlab.plots.background), which the
training process waits for: a command's `main` called from Python (the tests, a notebook)
returns as usual.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def run_then_exit(main: Callable[[], object]) -> NoReturn:
    """Run `main` and end the process with its exit status: its return value or the code of
    the SystemExit it raised, read as `sys.exit` reads it. Any other exception goes on to the
    interpreter's own handling (a traceback, exit status 1)."""
    try:
        code = main()
    except SystemExit as done:
        code = done.code
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        status = 1
    end_process(status)


def end_process(status: int) -> NoReturn:
    # What the interpreter does first at exit: the threading module's exit callbacks (they
    # tell idle thread pools, such as MLflow's artifact uploaders, to end), then it waits for
    # every non-daemon thread. Joining those threads without the callbacks waits forever on
    # an idle pool's worker.
    threading._shutdown()
    atexit._run_exitfuncs()  # then the exit handlers, as sys.exit would run them
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, a stream already closed
            status = status or 120  # what the interpreter reports for a failed final flush
    os._exit(status)
