"""Four collector processes on one PostgreSQL database lose nothing and duplicate nothing.

Two run as `postwatch collect smtp`, two as `postwatch serve --role collector`, each with its
own port and spool folder. A few hundred distinct messages are spread over them from several
client threads, and a set of identical messages goes to two collectors at the same moment.
What they store must equal what one process ingesting every distinct message once stores.
"""
from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from ingest.envelope import Envelope
from ingest.pipeline import Pipeline
from store import models as m
from store.config import DatabaseConfig
from store.engine import forget_engine, make_engine, session_factory
from tests.conftest import SAMPLES
from tests.ingest.collectors.servers import free_port, wait_port
from tests.ingest.messages import postfix_dsn

EXE = [sys.executable, "-m", "postwatch.cli"]
KINDS = ("bounces", "complaints", "autoreply", "broken")  # reports are few and have a key of their own
DISTINCT = 320
SHARED = 48  # messages each sent to two collectors at once


def _pg_only(postgres_server) -> None:
    if postgres_server is None:
        pytest.skip("runs in the PostgreSQL pass (POSTWATCH_DATABASE__URL)")


def samples() -> list[tuple[bytes, str, bool]]:
    """(message, envelope recipient, damaged): every e-mail sample of a bounce, complaint,
    auto-reply or damaged message, and the DMARC failure report, with CRLF line ends as SMTP
    carries them."""
    files = [p for kind in KINDS for p in sorted((SAMPLES / kind).glob("*.eml"))]
    files.append(SAMPLES / "dmarc" / "dmarc-failure-report.eml")
    out = []
    for p in files:
        raw = p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not raw:
            continue
        if not raw.endswith(b"\r\n"):
            raw += b"\r\n"
        rcpt = "fbl@example.com" if "complaint" in p.name else "bounces@example.com"
        out.append((raw, rcpt, p.parent.name == "broken"))
    return out


def numbered(count: int, start: int) -> list[tuple[bytes, str, bool]]:
    """`count` distinct messages: the samples in turn, each made unique by one header."""
    base = samples()
    return [(b"X-Postwatch-Test: %d\r\n" % (start + i) + raw, rcpt, damaged)
            for i, (raw, rcpt, damaged) in zip(range(count), itertools.cycle(base))]


def write_config(folder: Path, url: str, port: int) -> Path:
    folder.mkdir()
    path = folder / "postwatch.toml"
    path.write_text(f'''[database]
url = "{url}"

[spool]
dir = "{folder / 'spool'}"

[smtp]
listen = "127.0.0.1:{port}"
processes = 1
messages_per_minute = 0
starttls = false
''')
    return path


def start(folder: Path, config: Path, serve: bool) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    argv = EXE + ["--config", str(config)] + (["serve", "--role", "collector"] if serve else ["collect", "smtp"])
    return subprocess.Popen(argv, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(folder / "collector.log", "ab"))


def send(port: int, messages: list[tuple[bytes, str, bool]], ready: threading.Barrier | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        if ready is not None:
            ready.wait(30)
        for raw, rcpt, _damaged in messages:
            client.sendmail("", [rcpt], raw)


def facts(url: str) -> dict[str, tuple]:
    """Per stored message (by sha256): kind, status, bounce events, complaint events, DMARC
    failure reports, quarantined."""
    engine = make_engine(DatabaseConfig(url=url))
    try:
        with engine.connect() as conn:
            def per_message(model) -> Counter:
                return Counter(dict(conn.execute(select(m.InboundMessage.sha256, func.count()).join(model)
                                                 .group_by(m.InboundMessage.sha256)).all()))
            bounces, complaints = per_message(m.BounceEvent), per_message(m.ComplaintEvent)
            failures, quarantined = per_message(m.DmarcFailureReport), per_message(m.Quarantine)
            return {sha: (kind, status, bounces[sha], complaints[sha], failures[sha], quarantined[sha])
                    for sha, kind, status in conn.execute(select(m.InboundMessage.sha256, m.InboundMessage.kind,
                                                                 m.InboundMessage.status))}
    finally:
        engine.dispose()


def spooled(folders: list[Path]) -> int:
    return sum(1 for f in folders for p in (f / "spool" / "new").glob("*.msg"))


def wait_stored(url: str, folders: list[Path], expect: int, timeout: float = 300) -> None:
    engine = make_engine(DatabaseConfig(url=url))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                n = conn.execute(text("SELECT count(*) FROM inbound_messages")).scalar()
            if n >= expect and spooled(folders) == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"{n} of {expect} messages stored after {timeout}s; {spooled(folders)} "
                             "spool file(s) left")
    finally:
        engine.dispose()


def test_four_collectors_store_each_message_once(tmp_path, store, database, postgres_server):
    _pg_only(postgres_server)
    distinct = numbered(DISTINCT, 0)
    shared = numbered(SHARED, DISTINCT)
    folders, procs = [], []
    try:
        for i in range(4):
            port = free_port()
            folder = tmp_path / f"collector{i}"
            config = write_config(folder, database.url, port)
            procs.append((start(folder, config, serve=i >= 2), port))
            folders.append(folder)
        for proc, port in procs:
            wait_port(port, timeout=60, proc=proc)
        ports = [port for _proc, port in procs]

        with ThreadPoolExecutor(16) as pool:
            jobs = [pool.submit(send, ports[k % 4], distinct[k::16]) for k in range(16)]
            # each shared message to collectors a and b, both sessions sending the same list at once
            for n, (a, b) in enumerate(((0, 1), (2, 3), (1, 2), (3, 0))):
                ready = threading.Barrier(2)
                part = shared[n::4]
                jobs += [pool.submit(send, ports[a], part, ready), pool.submit(send, ports[b], part, ready)]
            for job in jobs:
                job.result()

        sent = {hashlib.sha256(raw).hexdigest(): damaged for raw, _rcpt, damaged in distinct + shared}
        assert len(sent) == DISTINCT + SHARED
        wait_stored(database.url, folders, len(sent))
        stored = facts(database.url)
    finally:
        statuses = []
        for proc, _port in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, _port in procs:
            try:
                statuses.append(proc.wait(60))
            except subprocess.TimeoutExpired:
                proc.kill()
                statuses.append(proc.wait())
    logs = "".join((f / "collector.log").read_text(errors="replace") for f in folders)
    assert statuses == [0, 0, 0, 0], logs[-3000:]

    assert set(stored) == set(sent)  # nothing lost, nothing extra; sha256 is unique, so each once
    assert spooled(folders) == 0

    # what one process ingesting each distinct message once stores, in a database of its own
    ref = f"{database.url.rsplit('/', 1)[1]}_ref"
    postgres_server.create(ref, migrated=True)
    ref_url = postgres_server.url_of(ref)
    try:
        pipeline = Pipeline(session_factory(DatabaseConfig(url=ref_url)))
        list(pipeline.ingest_many([(raw, Envelope("smtp", None, "", (rcpt,)))
                                   for raw, rcpt, _damaged in distinct + shared],
                                  workers=1))
        expected = facts(ref_url)
    finally:
        forget_engine(ref_url)
        postgres_server.drop(ref)
    assert stored == expected
    kinds = Counter(kind for kind, *_ in stored.values())
    assert kinds["bounce"] and kinds["complaint"] and kinds["auto_reply"]  # the mix it claims to send
    # quarantined: the damaged samples, and none of the others
    assert {sha for sha, (*_, q) in stored.items() if q} == {sha for sha, damaged in sent.items() if damaged}

    # the collectors met the same messages and stored them without a failed transaction
    assert "ingest failed" not in logs and "Traceback" not in logs, logs[-3000:]
    assert logs.count("stopped after") == 4


# -- the race itself, made certain ----------------------------------------------------------------

def test_a_copy_another_writer_stored_before_is_a_duplicate_not_a_failure(pipeline, store):
    """A batch holds a message another writer stored before (twice: the batch has a second
    copy): that message is reported as the other's, its events are not written twice, and the
    rest of the batch is stored in the same transaction."""
    raw = postfix_dsn(message_id="<race-1@send.example.com>")
    other = postfix_dsn(message_id="<race-2@send.example.com>")
    first = pipeline.ingest(raw, Envelope("smtp"))
    outs = list(pipeline.ingest_many([(raw, Envelope("smtp")), (other, Envelope("smtp")),
                                      (raw, Envelope("smtp"))], workers=1))
    assert [o.duplicate for o in outs] == [True, False, True]
    assert outs[0].message_id == outs[2].message_id == first.message_id
    assert outs[0].events == 0 and outs[1].events == 1
    assert (outs[0].kind, outs[0].status) == ("bounce", "parsed")
    with store() as session:
        assert session.scalar(select(func.count()).select_from(m.InboundMessage)) == 2
        assert session.scalar(select(func.count()).select_from(m.BounceEvent)) == 2


def _store_in_order(url: str, pending: list, ready, results) -> None:
    forget_engine(url)  # the parent's connections are not this process's
    pipeline = Pipeline(session_factory(DatabaseConfig(url=url)))
    with pipeline.sessions() as session:  # connected before the start, so both start together
        session.execute(text("SELECT 1"))
    ready.wait(30)
    try:
        outs = pipeline._commit(pipeline._stamp(pending))
        results.put(("ok", sum(o.duplicate for o in outs)))
    except Exception as exc:  # reported to the test, which names it
        results.put((type(exc).__name__, str(exc).splitlines()[0]))


def test_two_writers_storing_the_same_messages_in_opposite_orders_do_not_deadlock(store, database,
                                                                                   postgres_server):
    """Inserted in arrival order, two batches of the same messages in opposite orders lock
    them crosswise, and PostgreSQL ends one transaction as a deadlock. Both must finish, one
    storing every message and the other finding each stored."""
    _pg_only(postgres_server)
    from ingest.pipeline import _prepare

    config = Pipeline(store).config
    pending = [_prepare((postfix_dsn(message_id=f"<order-{i}@send.example.com>"), Envelope("smtp")), config)
               for i in range(1500)]
    ctx = multiprocessing.get_context("fork")
    ready, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_store_in_order, args=(database.url, batch, ready, results))
             for batch in (pending, pending[::-1])]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    got = sorted(results.get(timeout=5) for _ in procs)
    assert got == [("ok", 0), ("ok", 1500)]
    with store() as session:
        assert session.scalar(select(func.count()).select_from(m.InboundMessage)) == 1500
        assert session.scalar(select(func.count()).select_from(m.BounceEvent)) == 1500
