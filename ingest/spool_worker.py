"""The spool worker: drains the spool into the pipeline.

A spool file is deleted only after the transaction holding its message committed; a crash
before that leaves it for the next start, and the pipeline stores the same bytes once.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from ingest.pipeline import Envelope, Outcome, Pipeline
from ingest.spool import Entry, Spool

log = logging.getLogger("ingest.spool")


class SpoolWorker:
    """Drains the spool into the pipeline; a file is deleted after its transaction commits."""

    def __init__(self, spool: Spool, pipeline: Pipeline, batch_size: int = 200, workers: int = 1,
                 on_outcome: Callable[[Entry, Outcome], None] | None = None) -> None:
        self.spool = spool
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.workers = workers
        self.on_outcome = on_outcome

    def drain_paths(self, paths: list[Path]) -> list[tuple[Entry, Outcome]]:
        """Ingest these spool files (about `batch_size` messages per transaction; a group file
        is never split), then delete them."""
        results: list[tuple[Entry, Outcome]] = []
        entries: list[Entry] = []
        files: list[Path] = []
        for p in paths:
            try:
                entries.extend(self.spool.read_all(p))
            except FileNotFoundError:  # drained by another worker
                continue
            files.append(p)
            if len(entries) >= self.batch_size:
                results += self._ingest(entries, files)
                entries, files = [], []
        if entries:
            results += self._ingest(entries, files)
        return results

    def _ingest(self, entries: list[Entry], files: list[Path]) -> list[tuple[Entry, Outcome]]:
        items = [(e.raw, e.source, None if e.rcpt_tos is None else Envelope(e.mail_from, e.rcpt_tos), e.origin)
                 for e in entries]
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

    def store_statuses(self, paths: list[Path]) -> list[str]:
        """Ingest these one-message files; each one's status (`parsed`, `ignored`, `quarantined`), in order.
        A file another worker took first counts as `parsed` (it is stored either way)."""
        done = {entry.path: out.status for entry, out in self.drain_paths(paths)}
        return [done.get(p, "parsed") for p in paths]

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
