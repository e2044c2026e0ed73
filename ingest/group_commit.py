"""Group commit: inputs handed in by many threads at once are stored several per transaction.

A web server answers each webhook only after its body is committed. Committing each request
on its own pays a transaction (and, on PostgreSQL, its round trips) per request; here the
requests that arrive while a transaction is being written wait for it to end and are then
written together, by one of them, in the next.

A transaction about to be written waits a little (`delay`, at most) for the inputs that other
threads have announced (`expect()`: they are being read) — PostgreSQL's commit_delay with
commit_siblings. A request that arrives alone is written at once: nothing waits for company
that is not coming.

Each caller gets its own outcome, or its own exception: when a shared transaction fails, its
inputs are written again one by one, so one bad input fails only its own request.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Callable, Iterator, Sequence

log = logging.getLogger(__name__)


class _Slot:
    __slots__ = ("item", "done", "lead", "outcome", "error")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.done = threading.Event()
        self.lead = False  # woken to write the next transaction, not with its outcome
        self.outcome: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """`commit(items) -> outcomes` (one transaction, one outcome per item, in order), called
    for at most `most` waiting items at a time, by one caller thread at a time."""

    def __init__(self, commit: Callable[[list], Sequence], most: int = 64, delay: float = 0.002) -> None:
        self._commit = commit
        self._most = max(1, most)
        self._delay = delay
        self._cond = threading.Condition()
        self._waiting: list[_Slot] = []
        self._writing = False
        self._coming = 0  # inputs announced by expect() and not handed in yet
        self._local = threading.local()
        self.transactions = 0  # how many transactions it wrote (for tests and figures)

    @contextlib.contextmanager
    def expect(self) -> Iterator[None]:
        """Around the reading of an input this thread may hand in: a transaction about to be
        written waits (at most `delay`) for it."""
        with self._cond:
            self._coming += 1
        self._local.announced = True
        try:
            yield
        finally:
            if getattr(self._local, "announced", False):  # not handed in after all
                self._local.announced = False
                with self._cond:
                    self._coming -= 1
                    self._cond.notify_all()

    def __call__(self, item: Any) -> Any:
        """Store `item` (in a transaction shared with the items of other threads waiting now)
        and return its outcome once that transaction is committed."""
        slot = _Slot(item)
        with self._cond:
            if getattr(self._local, "announced", False):
                self._local.announced = False
                self._coming -= 1
            self._waiting.append(slot)
            lead = not self._writing
            self._writing = True
            self._cond.notify_all()
        if not lead:
            slot.done.wait()
            if not slot.lead:
                return self._result(slot)
        self._write_next()
        slot.done.wait()  # written by now, in this thread's transaction or an earlier one
        return self._result(slot)

    def _write_next(self) -> None:
        """Write the waiting items (up to `most`), then hand the lead on to the first item
        still waiting, or give it up."""
        with self._cond:
            deadline = time.monotonic() + self._delay
            while self._coming > 0 and len(self._waiting) < self._most:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch, self._waiting = self._waiting[:self._most], self._waiting[self._most:]
        try:
            self._write(batch)
        finally:
            with self._cond:
                if self._waiting:
                    nxt = self._waiting[0]
                    nxt.lead = True
                    nxt.done.set()
                else:
                    self._writing = False
            for slot in batch:
                slot.lead = False
                slot.done.set()

    def _write(self, batch: list[_Slot]) -> None:
        self.transactions += 1
        try:
            outcomes = self._commit([s.item for s in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            log.info("a shared transaction of %d inputs failed (%s: %s); writing them one by one",
                     len(batch), type(exc).__name__, exc)
            for slot in batch:
                self._write([slot])
            return
        for slot, outcome in zip(batch, outcomes, strict=True):
            slot.outcome = outcome

    @staticmethod
    def _result(slot: _Slot) -> Any:
        if slot.error is not None:
            raise slot.error
        return slot.outcome
