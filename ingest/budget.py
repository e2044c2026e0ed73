"""A CPU budget for one call: past it, the call is interrupted with `OverBudget`.

`ingest.parse.parse_bytes` runs each message within `ingest.parse_timeout` CPU seconds, so a
message that would hold a worker for minutes is quarantined and the worker goes on. The
budget is a profiling timer (`setitimer(ITIMER_PROF)`: the CPU time of the process, user
and system, all its threads together; time spent waiting for a busy machine does not
count) whose signal raises `OverBudget` in the frames the call runs. Python runs signal
handlers in the main thread only, so a call made in another thread runs without a budget
(the IMAP collector's mailbox threads, which parse in-thread); every other path
(`postwatch parse`, `postwatch ingest`, the spool worker, the pipeline's worker processes)
parses in a main thread.

How far the interruption reaches: Python code is interrupted at its next bytecode; a
C-level call only when it checks for signals itself. `re` checks once per 4,096 steps of
its matcher, counted within one match attempt (CPython's MAYBE_CHECK_SIGNALS in
Modules/_sre/sre_lib.h), and a run of one character class (`[^@]+`) is a single step: a
catastrophic backtrack stops at once, but a search that makes many short attempts (a
pattern retried at every position of a long line) may run to its end before it notices.
What bounds one such call is the readers' own limits (a line is read to its first
`ingest.bounce.text.MAX_LINE` characters, and the patterns are linear), not the budget.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Callable, TypeVar

T = TypeVar("T")
RETRY = 0.1  # seconds after which the signal comes again, if something swallowed the first


class OverBudget(BaseException):
    """The call ran past its CPU budget. A BaseException, so that a parser's own
    `except Exception` (a parser error becomes a quarantine reason) cannot swallow it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"took longer than {seconds:g} s of CPU")
        self.seconds = seconds


# (the frame of the call `within` is making, its budget in seconds) while one runs; None
# between calls, when the handler does nothing
_running: tuple | None = None


def _on_signal(signum, frame) -> None:
    running = _running
    if running is not None and frame is not running[0]:
        raise OverBudget(running[1])


def can_limit() -> bool:
    """Whether a budget can be set here: a platform with setitimer, in the main thread."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def within(seconds: float, fn: Callable[..., T], *args) -> T:
    """`fn(*args)`, interrupted with OverBudget after `seconds` of CPU time (`fn` a Python
    function: the signal raises in the frames it runs).

    No budget when `seconds` is 0 or less, where none can be set (see `can_limit`), and
    inside another budget. The signal never raises here nor after: what runs after `fn`
    returns (disarming, restoring) is ignored by the handler,
    the timer is off before this returns, and the previous timer and handler are put back.
    """
    global _running
    if seconds <= 0 or _running is not None or not can_limit():
        return fn(*args)
    previous = signal.signal(signal.SIGPROF, _on_signal)
    try:
        _running = (sys._getframe(), seconds)
        before = signal.setitimer(signal.ITIMER_PROF, seconds, RETRY)
        try:
            return fn(*args)
        finally:
            _running = None
            signal.setitimer(signal.ITIMER_PROF, *before)
    finally:
        _running = None
        # A signal still pending meets the inert handler rather than the default action
        # (which ends the process); a handler someone else set is put back.
        if callable(previous) and previous is not _on_signal:
            signal.signal(signal.SIGPROF, previous)
