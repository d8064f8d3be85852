"""SIGINT and SIGTERM while a run is open: raised as RunInterrupted so that the run closes
KILLED, but never in the middle of a store call (nnlab.tracking.store.client.SignalSafeClient
holds them until the call returns)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class RunInterrupted(KeyboardInterrupt):
    """Raised on SIGINT / SIGTERM so that the run closes as KILLED."""


_held = {"depth": 0, "pending": None}  # store calls in progress on the main thread; a signal
# A scheduler's own handler that arrived mid store call (its signal, frame), run when it returns.
_deferred: list = []
# Signals a scheduler handles itself: submitit requeues a preempted job on SIGUSR2 and exits
# from its handler. Raised inside a sqlite commit, that exit left the store locked for the
# process's own closing of its run (seen under load: the preempted run stayed RUNNING).
SCHEDULER_SIGNALS = (signal.SIGUSR2,)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Let the block finish before an interrupt that arrives during it is raised (see
    SignalSafeClient). Only the main thread receives signals, so only it counts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _held["depth"] += 1
    try:
        yield
    finally:
        _held["depth"] -= 1
        if _held["depth"] == 0 and _deferred:
            handler, signum, frame = _deferred.pop()
            _deferred.clear()
            handler(signum, frame)  # e.g. submitit's requeue, which exits from here
        pending = _held["pending"]
        if _held["depth"] == 0 and pending is not None:
            _held["pending"] = None
            raise RunInterrupted(f"signal {pending}")


@contextlib.contextmanager
def interrupts_recorded() -> Iterator[dict[str, str]]:
    """Turn SIGINT and SIGTERM into RunInterrupted, and remember which signal came; a
    scheduler's own handler (SCHEDULER_SIGNALS) waits for a store call in progress.

    The memory matters because Lightning catches KeyboardInterrupt itself and turns it into
    `sys.exit(1)`: without it an interrupted run would look like a failed one.
    """
    received: dict[str, str] = {}
    if threading.current_thread() is not threading.main_thread():
        yield received  # signals reach only the main thread; nothing to install here
        return

    def handler(signum, frame):
        received["signal"] = signal.Signals(signum).name
        if _held["depth"]:  # mid store call: raised when it returns
            _held["pending"] = received["signal"]
            return
        raise RunInterrupted(f"signal {received['signal']}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in SCHEDULER_SIGNALS:
        theirs = signal.getsignal(s)
        if callable(theirs):  # a scheduler's handler: deferred while a store call runs

            def deferring(signum, frame, theirs=theirs):
                if _held["depth"]:
                    _deferred.append((theirs, signum, frame))
                    return
                theirs(signum, frame)

            previous[s] = signal.signal(s, deferring)
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
