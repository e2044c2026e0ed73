"""The pipeline: raw bytes in, facts stored.

    store raw (once, by sha256) -> detect kind -> parse -> write events

A message and everything read from it are written in one transaction; `ingest_many` puts
many messages in one transaction (the cost of a commit is paid once per batch). Parsing
happens before the transaction opens, so a slow parse never holds a lock.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import itertools
import logging
import multiprocessing
import os
import random
import time
import zlib
from typing import Any, Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ingest.attribution import OwnIps
from ingest.config import DomainsConfig, IngestConfig
from ingest.envelope import Envelope
from ingest.facts import FactWriter
from ingest.group_commit import GroupCommit
from ingest.outcome import Outcome, Parsed
from ingest.parse import parse_bytes, prepare
from ingest.types import ParseResult
from ingest.webhooks.facts import ReadOptions, read_options
from ingest.webhooks.readers import is_webhook, read_stored
from store import models as m
from store.bulk import dialect_insert
from store.clock import Clock, utcnow

log = logging.getLogger(__name__)
PARALLEL_MIN = 64  # fewer inputs than this (and fewer bytes than the next) are parsed in this process
PARALLEL_MIN_BYTES = 4 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024  # a worker's task: at most this many bytes of input (or one input)
RETRIES = 5  # tries of a transaction that PostgreSQL ended to break a deadlock
RETRY_SQLSTATES = ("40P01", "40001")  # deadlock_detected, serialization_failure
_MESSAGES = m.InboundMessage.__table__  # written and read through Core: the ORM's bookkeeping costs more here


def _parsed(raw: bytes, envelope: Envelope, result: ParseResult) -> Parsed:
    """An input and what it was read as, ready to store (compressed, with its sha256)."""
    return Parsed(len(raw), zlib.compress(raw, 1), hashlib.sha256(raw).hexdigest(), envelope, result)


def _prepare(item: tuple[bytes, Envelope], config: IngestConfig) -> Parsed:
    raw, envelope = item
    return _parsed(raw, envelope, parse_bytes(raw, config, envelope))


def _prepare_many(args: tuple[list, IngestConfig]) -> list[Parsed]:
    items, config = args
    return [_prepare(item, config) for item in items]


def _chunks(items: Iterator[tuple], most: int) -> Iterator[list[tuple]]:
    """`items` in lists of at most `most` inputs and CHUNK_BYTES bytes, so that large inputs
    (DMARC reports) are shared between the workers as evenly as small ones."""
    chunk: list[tuple] = []
    size = 0
    for item in items:
        chunk.append(item)
        size += len(item[0])
        if len(chunk) >= most or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


class Pipeline:
    """Ingests raw messages into one store."""

    def __init__(self, sessions: sessionmaker[Session], config: IngestConfig | None = None,
                 clock: Clock = utcnow, domains: DomainsConfig | None = None,
                 webhooks: ReadOptions | None = None) -> None:
        self.sessions = sessions
        self.config = config or IngestConfig()
        # how webhook bodies kept in quarantine are read again: as the web server reads them
        self.webhooks = webhooks or read_options(self.config.rules_file)
        self.own = OwnIps(domains)  # what an event's sending IP is attributed to
        self.clock = clock
        prepare(self.config)
        # inputs read by their callers (webhook bodies), from many threads: several per transaction
        self._group = GroupCommit(lambda batch: self._commit(self._stamp(batch)), self.config.batch_size)

    def ingest(self, raw: bytes, envelope: Envelope) -> Outcome:
        """Store one message and its facts in one transaction."""
        return self._commit(self._stamp([_prepare((raw, envelope), self.config)]))[0]

    def ingest_read(self, raw: bytes, envelope: Envelope, result: ParseResult) -> Outcome:
        """Store one input its caller has read already (an ESP webhook's body) and its facts,
        with the same sha256 dedup as mail; return once it is committed. Inputs that threads
        hand in at the same time share a transaction (group commit)."""
        return self._group(_parsed(raw, envelope, result))

    def expecting(self) -> contextlib.AbstractContextManager[None]:
        """Around reading an input that will go to `ingest_read`: a shared transaction about to
        be written waits a moment for it (see ingest.group_commit)."""
        return self._group.expect()

    def ingest_many(self, items: Iterable[tuple[bytes, Envelope]],
                    batch_size: int | None = None, workers: int | None = None) -> Iterator[Outcome]:
        """Ingest (raw, envelope) pairs, at most `batch_size` per transaction.

        With more than one worker, messages are parsed in worker processes, a chunk at a time,
        while this one writes what they have parsed: parsing is the costly part and it uses
        every core. A batch is written as soon as the next chunk is not parsed yet, so writing
        never waits for a whole batch of large inputs (DMARC reports) to be parsed.
        """
        size = batch_size or self.config.batch_size
        workers = self.config.workers if workers is None else workers
        if workers <= 0:
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        it = iter(items)
        first = list(itertools.islice(it, size))
        if workers < 2 or (len(first) < PARALLEL_MIN and sum(len(item[0]) for item in first) < PARALLEL_MIN_BYTES):
            inputs = first
            while inputs:
                yield from self._commit(self._stamp([_prepare(item, self.config) for item in inputs]))
                inputs = list(itertools.islice(it, size))
            return
        chunks = _chunks(itertools.chain(first, it), max(1, min(64, size // (workers * 2))))
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            in_flight: collections.deque = collections.deque()
            queued = 0  # inputs parsed or being parsed and not yet written: two batches at most

            def submit() -> None:
                nonlocal queued
                while queued < 2 * size:
                    chunk = next(chunks, None)
                    if chunk is None:
                        return
                    in_flight.append(pool.apply_async(_prepare_many, ((chunk, self.config),)))
                    queued += len(chunk)

            submit()
            batch: list[Parsed] = []
            weight = 0  # bytes in the batch
            while in_flight:
                parsed = in_flight.popleft().get()
                batch.extend(parsed)
                weight += sum(p.size for p in parsed)
                # a full batch is written; so is a smaller one of large inputs while the
                # workers are still parsing the next chunk (small ones wait: a transaction has a cost)
                if len(batch) >= size or not in_flight or (
                        not in_flight[0].ready() and (weight >= CHUNK_BYTES or len(batch) >= size // 4)):
                    queued -= len(batch)
                    submit()  # the workers parse on while this batch is written
                    yield from self._commit(self._stamp(batch))
                    batch, weight = [], 0

    def reprocess_quarantined(self, kind: str | None = None) -> Iterator[Outcome]:
        """Parse the quarantined messages again, after a rules change or an upgrade.

        Those that now parse get their facts and leave quarantine (the quarantine row keeps
        when); the others keep their place, with today's reason. One transaction each.
        """
        query = select(m.Quarantine.message_id).where(m.Quarantine.released_at.is_(None))
        if kind:
            query = query.join(m.InboundMessage).where(m.InboundMessage.kind == kind)
        with self.sessions() as session:
            ids = session.scalars(query.order_by(m.Quarantine.message_id)).all()
        for message_id in ids:
            with self.sessions.begin() as session:
                yield self._reprocess(session, message_id)

    # -- internals ---------------------------------------------------------------------------

    def _reprocess(self, session: Session, message_id: int) -> Outcome:
        msg = session.get_one(m.InboundMessage, message_id)
        quarantine = session.scalars(select(m.Quarantine).where(m.Quarantine.message_id == message_id)).one()
        if msg.raw_zlib is not None:
            raw = zlib.decompress(msg.raw_zlib)
        else:
            assert msg.raw_path is not None  # a stored message keeps its bytes in one or the other
            with open(msg.raw_path, "rb") as fh:
                raw = fh.read()
        envelope = Envelope(msg.source, msg.origin, msg.envelope_from,
                            None if msg.envelope_to is None else tuple(msg.envelope_to))
        if is_webhook(msg.source):  # an ESP webhook's JSON body, read by its provider's reader
            p = _parsed(raw, envelope, read_stored(msg.source, raw, self.webhooks))
        else:
            p = _prepare((raw, envelope), self.config)
        p.received_at = msg.received_at
        out = Outcome(message_id, msg.sha256, p.result.kind, _status(p.result), p.result.error, 0,
                      origin=msg.origin)
        msg.kind = out.kind
        if out.status == "quarantined":
            msg.error = quarantine.reason = out.error or "unreadable"
            return out
        quarantine.released_at = self.clock()
        msg.status, msg.error, msg.attribution = out.status, None, dict(p.result.attribution) or None
        session.flush()
        FactWriter(session, self.own).write([(p, out)])  # may mark a re-sent report `ignored`
        return out


    def _stamp(self, batch: list[Parsed]) -> list[Parsed]:
        now = self.clock()
        for p in batch:
            p.received_at = now
        return batch

    def _commit(self, batch: list[Parsed]) -> list[Outcome]:
        try:
            return self._transaction(batch)
        except IntegrityError:
            if len(batch) == 1:
                # another process stored the same report between our check and insert
                return self._transaction(batch)
            log.info("batch of %d hit a concurrent duplicate report; storing one by one", len(batch))
            return [out for p in batch for out in self._commit([p])]

    def _transaction(self, batch: list[Parsed]) -> list[Outcome]:
        """`_write` in a transaction of its own; again when PostgreSQL ends it to break a
        deadlock or a serialization conflict with another writer (nothing of it was stored)."""
        for attempt in range(1, RETRIES + 1):
            try:
                with self.sessions.begin() as session:
                    return self._write(session, batch)
            except OperationalError as exc:
                if attempt == RETRIES or getattr(exc.orig, "sqlstate", None) not in RETRY_SQLSTATES:
                    raise
                log.info("batch of %d met a concurrent writer (%s); trying it again", len(batch),
                         type(exc.orig).__name__)
                time.sleep(random.uniform(0.01, 0.1) * attempt)
        raise AssertionError("unreachable")

    def _stored(self, session: Session, shas: Iterable[str]) -> dict[str, Any]:
        shas = list(shas)
        if not shas:  # after an insert that skipped nothing
            return {}
        t = _MESSAGES
        return {row.sha256: row for row in session.connection().execute(
            select(t.c.sha256, t.c.id, t.c.kind, t.c.status, t.c.error).where(t.c.sha256.in_(shas)))}

    def _write(self, session: Session, batch: list[Parsed]) -> list[Outcome]:
        # One outcome per input; a second copy inside the batch is told apart here, one
        # stored before by the insert, which skips it (no look-up first: most inputs are new).
        outcomes: list[Outcome] = []
        fresh: dict[str, tuple[Parsed, Outcome]] = {}
        for p in batch:
            if p.sha256 in fresh:  # a second copy inside this batch: as the first becomes, below
                outcomes.append(Outcome(None, p.sha256, p.result.kind, _status(p.result), p.result.error, 0,
                                        duplicate=True, origin=p.envelope.origin))
            else:
                out = Outcome(None, p.sha256, p.result.kind, _status(p.result), p.result.error, 0,
                              origin=p.envelope.origin)
                fresh[p.sha256] = (p, out)
                outcomes.append(out)
        # Rows in sha256 order: two transactions storing some of the same messages lock them
        # in one order, so neither waits for the other in a circle (a deadlock). A message
        # stored before, or by another transaction meanwhile, is skipped here, not an error;
        # its facts are the ones stored with it.
        firsts = {sha: out for sha, (_p, out) in fresh.items()}
        fresh = dict(sorted(fresh.items()))
        conn = session.connection()
        ids = dict(conn.execute(_insert_new(conn.dialect.name),
                                [self._message_row(p, out.status) for p, out in fresh.values()]).all())
        for sha, old in self._stored(session, [sha for sha in fresh if sha not in ids]).items():
            out = fresh.pop(sha)[1]
            out.message_id, out.kind, out.status, out.error = old.id, old.kind, old.status, old.error
            out.duplicate = True
        for sha, (_p, out) in fresh.items():
            out.message_id = ids[sha]
        FactWriter(session, self.own).write(list(fresh.values()))
        for out in outcomes:
            if out.message_id is None:  # a second copy inside this batch: as the first became
                first = firsts[out.sha256]
                out.message_id, out.kind, out.status, out.error = (first.message_id, first.kind,
                                                                   first.status, first.error)
        return outcomes

    def _message_row(self, p: Parsed, status: str) -> dict[str, Any]:
        env = p.envelope
        r = p.result
        return {"sha256": p.sha256, "received_at": p.received_at, "source": env.source, "origin": env.origin,
                "envelope_from": env.mail_from if env.smtp else None,
                "envelope_to": list(env.rcpt_tos) if env.rcpt_tos is not None else None, "size": p.size,
                "kind": r.kind,
                "status": status, "error": r.error, "raw_zlib": p.raw_zlib, "raw_path": None,
                "attribution": dict(r.attribution) or None}


@functools.cache
def _insert_new(dialect: str):
    """INSERT INTO inbound_messages that skips a message whose sha256 is stored already, and
    returns the (sha256, id) of those it stored: built once per back end."""
    return (dialect_insert(dialect)(_MESSAGES).on_conflict_do_nothing(index_elements=["sha256"])
            .returning(_MESSAGES.c.sha256, _MESSAGES.c.id))


def _status(r: ParseResult) -> str:
    if r.error:
        return "quarantined"
    return "ignored" if r.kind == "auto_reply" else "parsed"
