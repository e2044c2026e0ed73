"""The spool worker: drains the spool into the pipeline.

A spool file is deleted only after the transaction holding its message committed; a crash
before that leaves it for the next start, and the pipeline stores the same bytes once.

When the database cannot be reached, the files wait and are tried again. When the store
refuses a batch because of what is in it (a value it cannot hold: text that is not UTF-8, a
number out of range; a bug met by one message), the batch is stored a file, then a message,
at a time, so that one message cannot hold back the others; a file still refused is moved
to `failed/` in the spool, kept, and said in the log with the reason (move it back to `new/`
to try again: what was stored of it is stored once).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, NamedTuple

from sqlalchemy.exc import StatementError

from ingest.outcome import Outcome
from ingest.pipeline import Pipeline
from ingest.spool import Entry, Spool

log = logging.getLogger("ingest.spool")
# Bytes of messages read into one transaction at most: a spool of large messages is stored
# a few at a time, not `batch_size` of them at once.
BATCH_BYTES = 64 << 20


class Stored(NamedTuple):
    """What became of one spool file handed to `SpoolWorker.store_files`."""

    status: str  # parsed | ignored | quarantined (a file set aside in failed/ counts as quarantined)
    duplicate: bool  # the same bytes were stored before: nothing new was written


class SpoolWorker:
    """Drains the spool into the pipeline; a file is deleted after its transaction commits."""

    def __init__(self, spool: Spool, pipeline: Pipeline, batch_size: int = 200, workers: int = 1,
                 on_outcome: Callable[[Entry, Outcome], None] | None = None) -> None:
        self.spool = spool
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.workers = workers
        self.on_outcome = on_outcome
        self.set_aside: set[Path] = set()  # files moved to failed/ by this worker

    def drain_paths(self, paths: list[Path]) -> list[tuple[Entry, Outcome]]:
        """Ingest these spool files (about `batch_size` messages, or BATCH_BYTES, per
        transaction; a group file is never split), then delete them."""
        results: list[tuple[Entry, Outcome]] = []
        entries: list[Entry] = []
        files: list[Path] = []
        size = 0
        for p in paths:
            try:
                read = self.spool.read_all(p)
            except FileNotFoundError:  # drained by another worker
                continue
            entries.extend(read)
            size += sum(len(e.raw) for e in read)
            files.append(p)
            if len(entries) >= self.batch_size or size >= BATCH_BYTES:
                results += self._ingest_apart(entries, files)
                entries, files, size = [], [], 0
        if entries:
            results += self._ingest_apart(entries, files)
        return results

    def _ingest_apart(self, entries: list[Entry], files: list[Path]) -> list[tuple[Entry, Outcome]]:
        """`_ingest`; when the store refuses the batch (not an outage), its files one at a
        time, and a refused file's messages one at a time (the file is then set aside)."""
        try:
            return self._ingest(entries, files)
        except Exception as exc:
            if not _refused(exc):
                raise  # the database, not the batch: run_forever waits and tries again
            reason = exc
        if len(files) > 1:
            log.warning("spool: the store refused a batch of %d file(s) (%s); storing them one at a time",
                        len(files), _short(reason))
            results = []
            for path in files:
                try:
                    results += self._ingest_apart(self.spool.read_all(path), [path])
                except FileNotFoundError:
                    continue
            return results
        if len(entries) == 1:
            self._set_aside(files[0], reason)
            return []
        results, refused = [], None
        for entry in entries:  # a group file: its other messages are stored all the same
            try:
                results += self._ingest([entry], [])  # the file is kept until all are through
            except Exception as exc:
                if not _refused(exc):
                    raise
                refused = refused or exc
        if refused is None:
            self.spool.remove(files)
        else:
            self._set_aside(files[0], refused)
        return results

    def _set_aside(self, path: Path, reason: BaseException) -> None:
        failed = self.spool.dir / "failed"
        failed.mkdir(exist_ok=True)
        try:
            path.rename(failed / path.name)
        except FileNotFoundError:  # taken by another worker meanwhile
            return
        self.set_aside.add(path)
        log.error("spool: %s could not be stored (%s); it is kept in %s - move it back to %s to try again",
                  path.name, _short(reason), failed, self.spool.new, exc_info=reason)

    def _ingest(self, entries: list[Entry], files: list[Path]) -> list[tuple[Entry, Outcome]]:
        items = [(e.raw, e.envelope) for e in entries]
        # ingest_many yields after each committed batch; these entries are one batch
        outcomes = list(self.pipeline.ingest_many(items, batch_size=len(items), workers=self.workers))
        self.spool.remove(files)  # after the commit: a crash before this replays them, stored once
        results = []
        for entry, out in zip(entries, outcomes):
            log.debug("spool %s -> %s %s%s", entry.path.name, out.kind, out.status,
                      " (already stored)" if out.duplicate else "")
            if self.on_outcome:
                self.on_outcome(entry, out)
            results.append((entry, out))
        return results

    def store_files(self, paths: list[Path]) -> list[Stored]:
        """Ingest these one-message files; what became of each, in order. A file another
        worker took first counts as `parsed` (it is stored either way)."""
        done = {entry.path: Stored(out.status, out.duplicate) for entry, out in self.drain_paths(paths)}
        return [Stored("quarantined", False) if p in self.set_aside else done.get(p, Stored("parsed", False))
                for p in paths]

    def drain(self, pause: Callable[[], bool] | None = None) -> int:
        """Everything waiting now (or until `pause()` says so); returns how many messages
        were ingested."""
        total = 0
        while not (pause and pause()):
            paths = self.spool.pending(self.batch_size)
            if not paths:
                return total
            total += len(self.drain_paths(paths))
        return total

    def run_forever(self, stop: threading.Event | None = None, idle: float = 0.2,
                    pause: Callable[[], bool] | None = None) -> None:
        """Drain until `stop`; while `pause()` is true, wait (a collector busy receiving)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            if pause and pause():
                stop.wait(idle)
                continue
            try:
                n = self.drain(pause)
            except Exception:  # a database outage: keep the files, try again
                log.exception("spool worker: ingest failed; the messages stay in the spool and are retried")
                stop.wait(5.0)
                continue
            if n:
                log.info("spool: %d message(s) ingested", n)
            else:
                stop.wait(idle)


def _refused(exc: BaseException) -> bool:
    """The store refused what the batch holds (rather than being unreachable or broken for
    every batch alike): a value the database cannot take (a DataError of the driver, text
    that cannot be encoded), or an error the batch's data met in the code."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        exc = exc.orig
    return (isinstance(exc, (UnicodeError, ValueError, TypeError, RecursionError))
            or any(cls.__name__ == "DataError" for cls in type(exc).__mro__))


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
