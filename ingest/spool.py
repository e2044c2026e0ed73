"""The spool: raw messages on disk, fsync'd, between a collector and the pipeline.

A collector answers `250` (or moves an IMAP message away) only after its message is in
`new/`; the spool worker feeds `new/` to `Pipeline.ingest_many` and deletes a file only
after the transaction holding it committed, so a crash anywhere loses nothing and a
restart replays what is left (the pipeline stores the same bytes once).

One file per message: a first line `#postwatch-spool 1 {json}` with the envelope, source
and origin, then the raw bytes. One file means one fsync and one rename per message.
This module knows files only; `ingest.spool_worker` feeds them to the pipeline.
Writes are grouped: many files are written and fsync'd in parallel, renamed, and their
directory fsync'd once (the journal commits them together), which is how fsync'ing every
message stays cheap.
"""
from __future__ import annotations

import concurrent.futures
import itertools
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable


log = logging.getLogger(__name__)
MAGIC = b"#postwatch-spool 1 "
_counter = itertools.count()


class SpoolError(OSError):
    """The spool cannot be written (disk full, permissions): said as a sentence."""


@dataclass
class Entry:
    """One spooled message as read back."""

    path: Path
    raw: bytes
    source: str
    origin: str | None
    mail_from: str | None = None
    rcpt_tos: tuple[str, ...] | None = None  # None: no envelope (not received by SMTP)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Item:
    """One message to spool."""

    raw: bytes
    source: str
    origin: str | None = None
    mail_from: str | None = None
    rcpt_tos: tuple[str, ...] | None = None  # the SMTP envelope, when there is one

    def header(self) -> bytes:
        env = None if self.rcpt_tos is None else {"mail_from": self.mail_from, "rcpt_tos": list(self.rcpt_tos)}
        meta = {"source": self.source, "origin": self.origin, "envelope": env, "spooled_at": time.time()}
        return MAGIC + json.dumps(meta, separators=(",", ":")).encode() + b"\n"


class Spool:
    """A directory with `tmp/` (being written) and `new/` (durable, waiting for the pipeline)."""

    def __init__(self, directory: str | os.PathLike, fsync_threads: int = 16) -> None:
        self.dir = Path(directory)
        self.tmp = self.dir / "tmp"
        self.new = self.dir / "new"
        try:
            for d in (self.dir, self.tmp, self.new):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create the spool folder {self.dir}: {exc.strerror}; "
                             "set spool.dir to a folder this user can write") from None
        self._pool = concurrent.futures.ThreadPoolExecutor(fsync_threads, thread_name_prefix="spool-fsync")
        self._prefix = f"{os.getpid()}"

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- writing -----------------------------------------------------------------------------

    def _name(self) -> str:
        # time first, so a listing sorted by name is the order of arrival
        return f"{time.time_ns():020d}-{self._prefix}-{next(_counter):08d}.msg"

    def _write_tmp(self, item: Item) -> tuple[Path, Path]:
        name = self._name()
        tmp = self.tmp / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, item.header())
            view = memoryview(item.raw)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp, self.new / name

    def put_many(self, items: list[Item]) -> list[Path]:
        """Write, fsync, rename and fsync the directory; returns the paths in `new/`.

        The files are fsync'd in parallel: the filesystem journal commits them together.
        """
        if not items:
            return []
        try:
            if len(items) == 1:
                pairs = [self._write_tmp(items[0])]
            else:
                pairs = list(self._pool.map(self._write_tmp, items))
            for tmp, final in pairs:
                os.rename(tmp, final)
            self._fsync_dir(self.new)
        except OSError as exc:
            raise SpoolError(f"cannot write to the spool {self.dir}: {exc.strerror or exc}") from exc
        return [final for _tmp, final in pairs]

    def put(self, item: Item) -> Path:
        return self.put_many([item])[0]

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- reading -----------------------------------------------------------------------------

    def pending(self, limit: int | None = None) -> list[Path]:
        """Files waiting in `new/`, oldest first."""
        names = sorted(e.name for e in os.scandir(self.new) if e.name.endswith(".msg"))
        if limit is not None:
            names = names[:limit]
        return [self.new / n for n in names]

    def count(self) -> int:
        return sum(1 for e in os.scandir(self.new) if e.name.endswith(".msg"))

    @staticmethod
    def read(path: Path) -> Entry:
        data = path.read_bytes()
        if data.startswith(MAGIC):
            head, _, raw = data.partition(b"\n")
            try:
                meta = json.loads(head[len(MAGIC):])
            except ValueError:
                meta = {}
        else:  # a file an operator dropped in by hand: all of it is the message
            meta, raw = {}, data
        env = meta.get("envelope")
        if env:
            return Entry(path, raw, meta.get("source") or "spool", meta.get("origin"),
                         env.get("mail_from"), tuple(env.get("rcpt_tos") or ()), meta)
        return Entry(path, raw, meta.get("source") or "spool", meta.get("origin"), meta=meta)

    def remove(self, paths: Iterable[Path]) -> None:
        for p in paths:
            try:
                os.unlink(p)
            except FileNotFoundError:  # another worker drained it first
                pass

    def clean_tmp(self, older_than: float = 3600.0) -> int:
        """Remove half-written files a crash left in `tmp/` (they never got a `250`)."""
        now, removed = time.time(), 0
        for e in os.scandir(self.tmp):
            try:
                if now - e.stat().st_mtime > older_than:
                    os.unlink(e.path)
                    removed += 1
            except FileNotFoundError:
                pass
        return removed


class GroupCommitter:
    """A thread that makes concurrent sessions' messages durable together.

    `submit(item, done)` queues a message; the thread takes everything queued, writes and
    fsyncs it as one group (`Spool.put_many`), then calls each `done(path, error)`. A
    session answers `250` from its `done`.
    """

    def __init__(self, spool: Spool, max_batch: int = 256) -> None:
        self.spool = spool
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="spool-commit", daemon=True)
        self._stopping = False
        self.groups = 0
        self.committed = 0
        self._thread.start()

    def submit(self, item: Item, done: Callable[[Path | None, Exception | None], None]) -> None:
        self._queue.put((item, done))

    def stop(self) -> None:
        self._stopping = True
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                paths: list = self.spool.put_many([item for item, _ in batch])
                error = None
            except Exception as exc:  # reported to every waiting session as a 451
                log.error("%s", exc)
                paths, error = [None] * len(batch), exc
            self.groups += 1
            self.committed += len(batch) if error is None else 0
            for (_, done), path in zip(batch, paths):
                done(path, error)
