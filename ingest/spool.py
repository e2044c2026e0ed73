"""The spool: raw messages on disk, fsync'd, between a collector and the pipeline.

A collector answers `250` (or moves an IMAP message away) only after its message is in
`new/`; the spool worker feeds `new/` to `Pipeline.ingest_many` and deletes a file only
after the transaction holding it committed, so a crash anywhere loses nothing and a
restart replays what is left (the pipeline stores the same bytes once).

Two kinds of file. One message: a first line `#postwatch-spool 1 {json}`, the message's
`Envelope` (`Envelope.to_dict`), then the raw bytes (the IMAP collector writes these, one per
message, renamed together and their directory fsync'd once). A group: a first line
`#postwatch-spool 2 {"messages": [{json, "size": N}, ...]}`, then the raw messages one
after the other. The SMTP collector's group committer writes everything its sessions
finished meanwhile as one group file: one write, one fsync, one rename and one directory
fsync for all of them, which is how fsync'ing every message before `250` stays cheap.
A file an operator drops into `new/` by hand is one message, all of it.
This module knows files only; `ingest.spool_worker` feeds them to the pipeline.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from ingest.envelope import Envelope

log = logging.getLogger(__name__)
MAGIC = b"#postwatch-spool 1 "
GROUP_MAGIC = b"#postwatch-spool 2 "
_counter = itertools.count()


class SpoolError(OSError):
    """The spool cannot be written (disk full, permissions): said as a sentence."""


@dataclass
class Entry:
    """One spooled message as read back."""

    path: Path
    raw: bytes
    envelope: Envelope


class Item(NamedTuple):
    """One message to spool, and how it came."""

    raw: bytes
    envelope: Envelope


def _head(envelope: Envelope, now: float) -> dict[str, Any]:
    """The envelope as the spool writes it, stamped with the time it was spooled."""
    return (envelope if envelope.spooled_at is not None else replace(envelope, spooled_at=now)).to_dict()


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

    def _write_tmp(self, parts: list[bytes]) -> tuple[Path, Path]:
        """Write `parts` to a new file in `tmp/` and fsync it; returns (that file, its name in `new/`)."""
        name = self._name()
        tmp = self.tmp / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, parts)
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
                pairs = [self._write_tmp([_single_head(items[0]), items[0].raw])]
            else:
                pairs = list(self._pool.map(lambda item: self._write_tmp([_single_head(item), item.raw]), items))
            for tmp, final in pairs:
                os.rename(tmp, final)
            self._fsync_dir(self.new)
        except OSError as exc:
            raise SpoolError(f"cannot write to the spool {self.dir}: {exc.strerror or exc}") from exc
        return [final for _tmp, final in pairs]

    def put_group(self, items: list[Item]) -> Path:
        """Write these messages as one group file: written, fsync'd, renamed, directory fsync'd."""
        now = time.time()
        metas = []
        for item in items:
            meta = _head(item.envelope, now)
            meta["size"] = len(item.raw)
            metas.append(meta)
        head = GROUP_MAGIC + json.dumps({"messages": metas}, separators=(",", ":")).encode() + b"\n"
        try:
            tmp, final = self._write_tmp([head] + [item.raw for item in items])
            os.rename(tmp, final)
            self._fsync_dir(self.new)
        except OSError as exc:
            raise SpoolError(f"cannot write to the spool {self.dir}: {exc.strerror or exc}") from exc
        return final

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

    def count_messages(self) -> int:
        """Messages waiting in `new/` (a group file counts its messages)."""
        total = 0
        for e in os.scandir(self.new):
            if not e.name.endswith(".msg"):
                continue
            try:
                with open(e.path, "rb") as f:
                    head = f.readline()
            except FileNotFoundError:  # stored meanwhile
                continue
            if head.startswith(GROUP_MAGIC):
                try:
                    total += len(json.loads(head[len(GROUP_MAGIC):])["messages"])
                except (ValueError, KeyError, TypeError):
                    total += 1
            else:
                total += 1
        return total

    @staticmethod
    def read_all(path: Path) -> list[Entry]:
        """The messages of one spool file, in order."""
        data = path.read_bytes()
        if data.startswith(GROUP_MAGIC):
            head, _, rest = data.partition(b"\n")
            try:
                metas = json.loads(head[len(GROUP_MAGIC):])["messages"]
                entries, at = [], 0
                for meta in metas:
                    size = int(meta["size"])
                    entries.append(_entry(path, meta, rest[at:at + size]))
                    at += size
                if at == len(rest):
                    return entries
            except (ValueError, KeyError, TypeError):
                pass
            # a damaged group (it was fsync'd whole, so only a hand edit does this): keep it all
            return [Entry(path, data, Envelope())]
        if data.startswith(MAGIC):
            head, _, raw = data.partition(b"\n")
            try:
                meta = json.loads(head[len(MAGIC):])
            except ValueError:
                meta = {}
            return [_entry(path, meta, raw)]
        # a file an operator dropped in by hand: all of it is the message
        return [Entry(path, data, Envelope())]

    @classmethod
    def read(cls, path: Path) -> Entry:
        """The message of a one-message file."""
        entries = cls.read_all(path)
        if len(entries) != 1:
            raise ValueError(f"{path} holds {len(entries)} messages; read it with Spool.read_all")
        return entries[0]

    def remove(self, paths: Iterable[Path]) -> None:
        for p in paths:
            try:
                os.unlink(p)
            except FileNotFoundError:  # another worker drained it first
                pass

    def clean_tmp(self, older_than: float = 3600.0) -> int:
        """Remove the half-written files a killed process left in `tmp/` (none got a `250`, and
        none was acknowledged to an IMAP server): those whose writer, the process named in the
        file name, is gone, and any older than `older_than` seconds (a name not of this spool's
        form, or a process id used again since). A file a live collector is writing is kept,
        so a collector starting beside another on the same spool takes nothing from it."""
        now, removed = time.time(), 0
        for e in os.scandir(self.tmp):
            try:
                if not _writer_alive(e.name) or now - e.stat().st_mtime > older_than:
                    os.unlink(e.path)
                    removed += 1
            except FileNotFoundError:  # renamed into new/ meanwhile
                pass
        return removed

    def recover(self) -> int:
        """The first step of every collector and spool worker: clear `tmp/` of what a killed
        process left (`clean_tmp`), and say so; returns how many files were removed."""
        removed = self.clean_tmp()
        if removed:
            log.info("spool: removed %d half-written file(s) from %s, left by a process stopped while "
                     "writing them (none had been acknowledged)", removed, self.tmp)
        return removed

_NAME = re.compile(r"\d{20}-(\d+)-\d{8}\.msg")


def _writer_alive(name: str) -> bool:
    """Whether the process that is writing the `tmp/` file `name` still runs (True when the
    name does not say: then only its age decides)."""
    m = _NAME.fullmatch(name)
    if not m:
        return True
    try:
        os.kill(int(m.group(1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; or not a process id
        return True
    return True

def _entry(path: Path, meta: dict[str, Any], raw: bytes) -> Entry:
    return Entry(path, raw, Envelope.from_dict(meta))


def _single_head(item: Item) -> bytes:
    return MAGIC + json.dumps(_head(item.envelope, time.time()), separators=(",", ":")).encode() + b"\n"


def _write_all(fd: int, parts: list[bytes]) -> None:
    """os.writev until every byte is written (it may write less than asked)."""
    views = [memoryview(p) for p in parts if p]
    while views:
        n = os.writev(fd, views[:1024])  # IOV_MAX
        while n and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


class GroupCommitter:
    """A thread that makes concurrent sessions' messages durable together.

    `await committer.submit(item)` queues a message and returns the path of its file in
    `new/` once it is durable (or raises `SpoolError`). The thread takes everything queued,
    writes it as one group file (`Spool.put_group`), then wakes each waiting event loop
    once for the whole group. A session answers `250` when its `submit` returns.
    """

    def __init__(self, spool: Spool, max_batch: int = 256, max_bytes: int = 32 << 20) -> None:
        self.spool = spool
        self.max_batch = max_batch
        self.max_bytes = max_bytes  # a group stops growing here (one large message still goes alone)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="spool-commit", daemon=True)
        self.groups = 0
        self.committed = 0
        self._thread.start()

    def submit(self, item: Item) -> "asyncio.Future[Path]":
        """From an event loop: a future that is the message's path once it is durable."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put((item, loop, fut))
        return fut

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            size = len(first[0].raw)
            while len(batch) < self.max_batch and size < self.max_bytes:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
                size += len(nxt[0].raw)
            try:
                path = self.spool.put_group([item for item, _, _ in batch])
                error = None
            except Exception as exc:  # reported to every waiting session as a 451
                log.error("%s", exc)
                path = None
                error = exc if isinstance(exc, SpoolError) else SpoolError(str(exc))
            self.groups += 1
            self.committed += len(batch) if error is None else 0
            by_loop: dict = {}
            for _, loop, fut in batch:
                by_loop.setdefault(loop, []).append((fut, path))
            for loop, settled in by_loop.items():
                try:  # one wake-up of each loop for the whole group
                    loop.call_soon_threadsafe(_settle, settled, error)
                except RuntimeError:  # that loop is closed: nobody waits any more
                    pass


def _settle(settled: list, error: Exception | None) -> None:
    for fut, path in settled:
        if fut.done():  # the session went away meanwhile
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(path)
