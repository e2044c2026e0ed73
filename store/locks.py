"""Locks that the postwatch processes sharing one store take through it.

On PostgreSQL a lock is a session-level advisory lock (`pg_try_advisory_lock`) held by a
connection of its own: when the process dies, even by SIGKILL, its connection closes and the
server frees the lock. On SQLite (one machine) it is an OS file lock (`flock`) on a file
beside the database file, e.g. `postwatch.db.scheduler.lock`, which the kernel frees when the
process dies. A lock never waits: `try_acquire()` says whether it got it, `check()` whether it
still holds it (False once its connection is gone), `release()` lets it go; `holder()` says
which host:pid holds it, as far as the store can tell.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError


def lock_key(name: str) -> int:
    """The advisory lock key of `name`: a signed 64-bit number, the same in every process."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def whoami() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on key `lock_key("postwatch " + name)`.

    `dedicated`: the connection leaves the engine's pool for good (a lock held for a process's
    lifetime); otherwise it is a pooled one, unlocked before it goes back."""

    def __init__(self, engine: Engine, name: str, dedicated: bool = False) -> None:
        self.engine, self.name, self.dedicated = engine, name, dedicated
        self.key = lock_key(f"postwatch {name}")
        self._conn: Connection | None = None

    def describe(self) -> str:
        return f"PostgreSQL advisory lock {self.key} (\"postwatch {self.name}\")"

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return self.check()
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            if self.dedicated:
                conn.detach()  # closing it closes the session, and so frees the lock
            got = conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
            if got:  # who holds it, for holder(); pg_stat_activity shows it to every session
                conn.execute(text("SELECT set_config('application_name', :n, false)"),
                             {"n": f"postwatch {self.name} {whoami()}"[:63]})
        except BaseException:
            conn.invalidate()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def check(self) -> bool:
        """Whether this session still holds the lock; False (and the connection dropped) once
        the connection is lost — a server restart, or an administrator ending the session."""
        if self._conn is None:
            return False
        try:
            held = self._conn.scalar(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND granted AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"),
                _halves(self.key))
        except SQLAlchemyError:
            held = 0
        if not held:
            self._drop()
        return bool(held)

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            if not self.dedicated:
                self._conn.execute(text("RESET application_name"))
            self._conn.close()
        except SQLAlchemyError:
            self._drop()
        self._conn = None

    def _drop(self) -> None:
        try:
            self._conn.invalidate()  # never back to the pool: it may hold the lock still
        except SQLAlchemyError:
            pass
        self._conn = None

    def holder(self) -> str | None:
        """host:pid of the process holding the lock (or its server session), None when free."""
        with self.engine.connect() as conn:
            row = conn.execute(text(
                "SELECT l.pid, a.application_name FROM pg_locks l "
                "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND classid::bigint = :hi "
                "AND objid::bigint = :lo AND objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                _halves(self.key)).first()
        if row is None:
            return None
        prefix = f"postwatch {self.name} "
        if row.application_name and row.application_name.startswith(prefix):
            return row.application_name[len(prefix):]
        return f"server session {row.pid}"


def _halves(key: int) -> dict[str, int]:
    """pg_locks shows a bigint key as two unsigned 32-bit halves."""
    return {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}


class FileLock:
    """An exclusive `flock` on `path`, which holds the holder's host:pid while it is held."""

    def __init__(self, path: str | Path, name: str = "") -> None:
        self.path, self.name = Path(path), name
        self._fd: int | None = None

    def describe(self) -> str:
        return f"file lock {self.path}"

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return self.check()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{whoami()}\n".encode(), 0)
        self._fd = fd
        return True

    def check(self) -> bool:
        """Held, and the file is still the one at `path` (not removed or replaced)."""
        if self._fd is None:
            return False
        try:
            same = os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
        except OSError:
            same = False
        if not same:
            self.release()
        return same

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        os.close(self._fd)  # closing the last descriptor unlocks
        self._fd = None

    def holder(self) -> str | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


class LocalLock:
    """An in-memory SQLite store: one process only, nothing to coordinate."""

    name = ""

    def describe(self) -> str:
        return "no lock (an in-memory database)"

    def try_acquire(self) -> bool:
        return True

    def check(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def holder(self) -> str | None:
        return None


def store_lock(engine: Engine, name: str, dedicated: bool = False) -> AdvisoryLock | FileLock | LocalLock:
    """The lock `name` of the store behind `engine` (see the module's docstring)."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return AdvisoryLock(engine, name, dedicated)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not url.database.startswith("file:"):
        return FileLock(f"{url.database}.{name}.lock", name)
    return LocalLock()
