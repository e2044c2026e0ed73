"""Per-client limits of the SMTP collector, shared by all its acceptor processes.

The acceptors share one listening socket, so one client's sessions land in any of them;
a limit kept per process would let a client have `processes` times its share (or refuse
it early if each process took a fraction). So the counts live in one table in shared
memory (an anonymous mapping made before the fork), and every change is made under one
shared semaphore (no system call when nobody else holds it). An acceptor killed inside
that short critical section would leave it taken: the others then go on without it after
a second (and say so), and the supervisor frees it when it restarts the dead acceptor.
Open sessions are counted per process (one column each), so the supervisor can forget
the sessions of an acceptor that died (`release`).

The table has a fixed number of slots; a client lives within a short run of slots after
its hash. A client with no open session and no message in the last minute may be
replaced by a new one; when a run holds no such client, the least recently seen one
without open sessions is forgotten (its minute starts again), and only when all of a run
have sessions open is a new client refused. With the default size that needs thousands
of clients connected at once.
"""
from __future__ import annotations

import logging
import mmap
import multiprocessing
import os
import time
import zlib
from typing import Callable

from ingest.config import SMTPConfig

log = logging.getLogger("ingest.collectors.smtp")
BUCKETS = 60  # one per second of the last minute
RUN = 32  # slots a client may live in, after its hash
KEY = 24  # bytes of a slot's key: the client address, or a digest of a long one
STATS = ("sessions", "accepted", "refused_recipients", "refused_sessions")


class ClientLimits:
    """Open sessions (per client and in all), and accepted messages per client per minute."""

    def __init__(self, config: SMTPConfig, clock: Callable[[], float] = time.monotonic,
                 processes: int = 1, slots: int = 0) -> None:
        self.config = config
        self.clock = clock  # CLOCK_MONOTONIC is the same in every process of the machine
        self.processes = max(1, processes)
        self.slots = slots or max(4096, 4 * (config.max_sessions or 1000))
        self.index = 0  # which process column is this process's (`bind`)
        p = self.processes
        # header: open sessions per process, then each process's statistics
        self._head = p + p * len(STATS)
        # a slot: open sessions per process, last seen (ms), bucket seconds, bucket counts
        self._width = p + 1 + 2 * BUCKETS
        size = 8 * (self._head + self.slots * self._width) + KEY * self.slots
        self._map = mmap.mmap(-1, size)  # MAP_SHARED | MAP_ANONYMOUS: shared with children
        self._n = memoryview(self._map)[:8 * (self._head + self.slots * self._width)].cast("q")
        self._keys_at = 8 * (self._head + self.slots * self._width)
        self._lock = _Lock(multiprocessing.get_context("fork").Lock() if p > 1 else None)
        self._where: dict[str, int] = {}  # this process's memory of client -> slot (checked on use)

    # -- processes ---------------------------------------------------------------------------

    def bind(self, index: int) -> None:
        """In an acceptor after the fork: count this process's sessions in column `index`."""
        self.index = index
        self._where = {}

    def release(self, index: int) -> None:
        """Forget the open sessions of acceptor `index` (it died; its connections are gone)."""
        self._lock.repair()
        with self._lock:
            n = self._n
            n[index] = 0
            for s in range(self.slots):
                n[self._head + s * self._width + index] = 0

    def open_here(self) -> int:
        """Sessions open in this process."""
        return self._n[self.index]

    @property
    def total(self) -> int:
        """Sessions open in all processes."""
        return sum(self._n[:self.processes])

    def record_stats(self, stats) -> None:
        """Add this process's counters (a `Stats`, at its exit) to the supervisor's summary."""
        base = self.processes + self.index * len(STATS)
        for i, name in enumerate(STATS):  # added: an acceptor restarted in this column adds its own
            self._n[base + i] += getattr(stats, name)

    def stats_total(self) -> dict[str, int]:
        out = dict.fromkeys(STATS, 0)
        for proc in range(self.processes):
            base = self.processes + proc * len(STATS)
            for i, name in enumerate(STATS):
                out[name] += self._n[base + i]
        return out

    # -- the limits --------------------------------------------------------------------------

    def enter(self, ip: str) -> str | None:
        """Register a new session; or the reason it is refused."""
        cfg = self.config
        with self._lock:
            total = self.total
            if cfg.max_sessions and total >= cfg.max_sessions:
                return f"too many sessions open ({total}); try again later"
            slot = self._slot(ip, create=True)
            if slot is None:
                return "too many clients connected at once; try again later"
            base = self._head + slot * self._width
            n = self._n
            open_ = sum(n[base:base + self.processes])
            if cfg.sessions_per_ip and open_ >= cfg.sessions_per_ip:
                return f"too many sessions from {ip} ({open_} open); try again later"
            n[base + self.index] += 1
            n[base + self.processes] = int(self.clock() * 1000)
            n[self.index] += 1
        return None

    def leave(self, ip: str) -> None:
        with self._lock:
            self._n[self.index] -= 1
            slot = self._slot(ip, create=False)
            if slot is not None:
                at = self._head + slot * self._width + self.index
                if self._n[at] > 0:
                    self._n[at] -= 1

    def message_refusal(self, ip: str) -> str | None:
        limit = self.config.messages_per_minute
        if not limit:
            return None
        with self._lock:
            slot = self._slot(ip, create=False)
            count = 0 if slot is None else self._recent(slot, int(self.clock()))
        if count >= limit:
            return f"too many messages from {ip} (limit {limit} a minute); try again later"
        return None

    def count_message(self, ip: str) -> None:
        if not self.config.messages_per_minute:
            return
        now = self.clock()
        second = int(now)
        with self._lock:
            slot = self._slot(ip, create=True)
            if slot is None:
                return  # every nearby slot has sessions open: this message goes uncounted
            base = self._head + slot * self._width
            n = self._n
            b = base + self.processes + 1 + second % BUCKETS
            if n[b] != second:
                n[b] = second
                n[b + BUCKETS] = 0
            n[b + BUCKETS] += 1
            n[base + self.processes] = int(now * 1000)

    # -- the table ---------------------------------------------------------------------------

    def _recent(self, slot: int, second: int) -> int:
        """Messages counted for `slot` in the last 60 seconds."""
        n = self._n
        b = self._head + slot * self._width + self.processes + 1
        return sum(n[b + BUCKETS + i] for i in range(BUCKETS) if n[b + i] > second - BUCKETS)

    def _key(self, ip: str) -> bytes:
        raw = ip.encode("utf-8", "surrogateescape")
        if len(raw) >= KEY or not raw:  # a digest for what does not fit (never for an IP address)
            raw = b"\x00" + zlib.crc32(raw).to_bytes(4, "big") + raw[-(KEY - 6):]
        return raw.ljust(KEY, b"\x00")

    def _key_of(self, slot: int) -> bytes:
        at = self._keys_at + slot * KEY
        return self._map[at:at + KEY]

    def _idle(self, slot: int, second: int) -> bool:
        base = self._head + slot * self._width
        return not any(self._n[base:base + self.processes]) and not self._recent(slot, second)

    def _slot(self, ip: str, create: bool) -> int | None:
        """The slot of `ip` (made when `create`), or None. Called under the lock."""
        key = self._key(ip)
        known = self._where.get(ip)
        if known is not None and self._key_of(known) == key:
            return known
        start = zlib.crc32(key) % self.slots
        empty = b"\x00" * KEY
        second = int(self.clock())
        idle = oldest = None
        oldest_seen = None
        for i in range(RUN):
            slot = (start + i) % self.slots
            k = self._key_of(slot)
            if k == key:
                self._where[ip] = slot
                return slot
            if k == empty:  # slots are never emptied again: the client is not further on
                if not create:
                    return None
                return self._take(ip, key, idle if idle is not None else slot)
            if not create:
                continue
            if idle is None and self._idle(slot, second):
                idle = slot
            base = self._head + slot * self._width
            if idle is None and not any(self._n[base:base + self.processes]):
                seen = self._n[base + self.processes]
                if oldest_seen is None or seen < oldest_seen:
                    oldest, oldest_seen = slot, seen
        if not create:
            return None
        choice = idle if idle is not None else oldest
        return None if choice is None else self._take(ip, key, choice)

    def _take(self, ip: str, key: bytes, slot: int) -> int:
        base = self._head + slot * self._width
        n = self._n
        for i in range(self._width):
            n[base + i] = 0
        at = self._keys_at + slot * KEY
        self._map[at:at + KEY] = key
        if len(self._where) > 100_000:
            self._where.clear()
        self._where[ip] = slot
        return slot


class _Lock:
    """The shared semaphore (None with one process). Inside one process, calls come from its
    event loop, one at a time, and hold it for a few microseconds."""

    __slots__ = ("sem", "held")

    def __init__(self, sem) -> None:
        self.sem = sem
        self.held = False

    def __enter__(self) -> None:
        if self.sem is not None:
            self.held = self.sem.acquire(timeout=1.0)
            if not self.held:
                log.error("smtp: the per-client limits were locked for a second (an acceptor died "
                          "holding them?); counting without the lock until it is freed")

    def __exit__(self, *exc) -> None:
        if self.held:
            self.held = False
            self.sem.release()

    def repair(self) -> None:
        """In the supervisor, after an acceptor died: free the lock if it is stuck taken."""
        if self.sem is not None:
            if self.sem.acquire(timeout=2.0):
                self.sem.release()
            else:
                self.sem.release()
                log.warning("smtp: freed the per-client limits' lock held by a dead acceptor")


def default_processes(configured: int) -> int:
    """`smtp.processes`: 0 means one acceptor per core."""
    return configured if configured > 0 else (os.cpu_count() or 1)
