"""Signals while a run is open (nnlab.tracking.store.interrupts): none is raised in the middle
of a store call, a scheduler's own handler included."""

import os
import signal

import pytest

from nnlab.tracking.store.interrupts import interrupts_held, interrupts_recorded


def test_a_schedulers_handler_waits_for_the_store_call_in_progress():
    """submitit requeues a preempted job on SIGUSR2 and exits from its handler: arriving
    during a store call, it runs once the call returns, not inside it."""
    order = []

    def schedulers(signum, frame):  # as submitit's: it ends the process with SystemExit
        order.append("handler")
        raise SystemExit(144)

    previous = signal.signal(signal.SIGUSR2, schedulers)
    try:
        # interrupts_held: a store call
        with interrupts_recorded(), pytest.raises(SystemExit), interrupts_held():
            os.kill(os.getpid(), signal.SIGUSR2)
            order.append("the call finished")
        assert order == ["the call finished", "handler"]
        # Outside a store call it runs at once, and after the run it is the scheduler's again.
        with interrupts_recorded(), pytest.raises(SystemExit):
            os.kill(os.getpid(), signal.SIGUSR2)
        assert signal.getsignal(signal.SIGUSR2) is schedulers
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_sigterm_during_a_store_call_is_raised_when_it_returns():
    from nnlab.tracking.store.interrupts import RunInterrupted

    order = []
    with interrupts_recorded() as received, pytest.raises(RunInterrupted), interrupts_held():
        os.kill(os.getpid(), signal.SIGTERM)
        order.append("the call finished")
    assert order == ["the call finished"] and received["signal"] == "SIGTERM"
