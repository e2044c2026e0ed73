"""Running a collector as a service: the listener, the spool, and a spool worker process.

`run_smtp` binds the port, starts the spool worker in a child process (parsing and the
database use the other core, and a slow database never delays a `250`), and serves until
SIGTERM or SIGINT. What is still in the spool at exit is ingested at the next start.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from typing import Any

from ingest.collectors.smtp import (FeedbackHandler, default_hostname, make_factory, parse_listen,
                                    tls_context)
from ingest.spool import GroupCommitter, Spool

log = logging.getLogger("ingest.collectors")


class CollectorError(RuntimeError):
    """A collector cannot start; the message says what to change."""


# -- the spool worker process --------------------------------------------------------------

def _die_with_parent() -> None:
    """Ask Linux to end this process when its parent dies (even by SIGKILL)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(config: Any, parent: int) -> None:
    from ingest.pipeline import Pipeline
    from ingest.spool_worker import SpoolWorker
    from store.engine import session_factory, upgrade

    _die_with_parent()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop

    def watch_parent() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    upgrade(config.database)
    spool = Spool(config.spool.dir)
    worker = SpoolWorker(spool, Pipeline(session_factory(config.database), config.ingest),
                         batch_size=config.spool.batch_size, workers=1)
    worker.run_forever(stop)


def start_worker(config: Any) -> multiprocessing.Process:
    proc = multiprocessing.get_context("fork").Process(
        target=_worker_main, args=(config, os.getpid()), name="postwatch-spool-worker", daemon=True)
    proc.start()
    return proc


# -- SMTP ----------------------------------------------------------------------------------

def bind(listen: str) -> socket.socket:
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise CollectorError(str(exc)) from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=1024)
    except PermissionError:
        raise CollectorError(f"cannot listen on {listen}: permission denied (ports below 1024 need "
                             "root or CAP_NET_BIND_SERVICE)") from None
    except OSError as exc:
        raise CollectorError(f"cannot listen on {listen}: {exc.strerror} (is another server using "
                             "it? set smtp.listen)") from None


def run_smtp(config: Any, drain: bool = True) -> int:
    """Serve SMTP until SIGTERM/SIGINT. Returns the exit status."""
    spool = Spool(config.spool.dir)
    hostname = default_hostname(config.smtp)
    try:
        context = tls_context(config.smtp, spool.dir, hostname)
    except ValueError as exc:
        raise CollectorError(str(exc)) from None
    sock = bind(config.smtp.listen)
    removed = spool.clean_tmp()
    if removed:
        log.info("spool: removed %d half-written file(s) left by a crash (none had been acknowledged)", removed)
    waiting = spool.count()
    if waiting:
        log.info("spool: %d message(s) left from the last run; ingesting them", waiting)
    worker = start_worker(config) if drain else None  # before any thread starts (fork)
    committer = GroupCommitter(spool)
    handler = FeedbackHandler(config.smtp, committer)
    log.info("smtp: listening on %s as %s; accepting %s; STARTTLS %s; spool %s", config.smtp.listen,
             hostname, ", ".join(config.smtp.accept),
             "off" if context is None else ("required" if config.smtp.require_tls else "offered"), spool.dir)
    try:
        asyncio.run(_serve(sock, handler, config, hostname, context, worker))
    finally:
        committer.stop()
        spool.close()
        if worker is not None:
            worker.terminate()
            worker.join(30)
        s = handler.stats
        log.info("smtp: stopped after %d session(s): %d message(s) accepted, %d recipient(s) refused, "
                 "%d session(s) refused; %d message(s) wait in the spool", s.sessions, s.accepted,
                 s.refused_recipients, s.refused_sessions, spool.count())
    return 0


async def _serve(sock, handler, config, hostname, context, worker) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(make_factory(handler, config.smtp, hostname, context), sock=sock)
    last_restart = 0.0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 2.0)
        except asyncio.TimeoutError:
            pass
        if worker is not None and not worker.is_alive() and not stop.is_set():
            if time.monotonic() - last_restart > 10:
                log.error("spool worker exited (status %s); starting it again", worker.exitcode)
                last_restart = time.monotonic()
                worker = start_worker(config)
    server.close()
    await asyncio.sleep(0)  # let sessions in DATA finish their fsync and reply
    deadline = time.monotonic() + 5
    while handler.limits.total and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def drain_spool(config: Any) -> tuple[int, int]:
    """Store everything waiting in the spool; (stored, left)."""
    from ingest.pipeline import Pipeline
    from ingest.spool_worker import SpoolWorker
    from store.engine import session_factory, upgrade

    upgrade(config.database)
    spool = Spool(config.spool.dir)
    worker = SpoolWorker(spool, Pipeline(session_factory(config.database), config.ingest),
                         batch_size=config.spool.batch_size, workers=config.ingest.workers)
    n = worker.drain()
    return n, spool.count()


# -- IMAP ----------------------------------------------------------------------------------

def run_imap(config: Any, once: bool = False) -> int:
    """Collect from every mailbox in imap.mailboxes (a thread each) until SIGTERM/SIGINT."""
    from ingest.collectors.imap import IMAPCollector, IMAPCollectorError, StateFile, parse_mailbox
    from ingest.pipeline import Pipeline
    from ingest.spool_worker import SpoolWorker
    from store.engine import session_factory, upgrade

    if not config.imap.mailboxes:
        raise CollectorError("no mailbox to read: set imap.mailboxes, e.g. "
                             "[\"imaps://fbl%40example.com@mail.example.com/INBOX\"], and imap.password")
    try:
        mailboxes = [parse_mailbox(url, config.imap.password) for url in config.imap.mailboxes]
    except ValueError as exc:
        raise CollectorError(str(exc)) from None
    upgrade(config.database)
    spool = Spool(config.spool.dir)
    worker = SpoolWorker(spool, Pipeline(session_factory(config.database), config.ingest),
                         batch_size=config.spool.batch_size, workers=1)
    left = worker.drain()
    if left:
        log.info("spool: %d message(s) left from the last run stored", left)
    lock = threading.Lock()

    def store(paths):
        with lock:  # one writer: the store is shared by the mailboxes' threads
            return worker.store_statuses(paths)

    stop = threading.Event()
    state = StateFile(spool.dir / "imap-state.json")
    collectors = [IMAPCollector(mb, config.imap, spool, store, state, config.ingest.max_message_bytes, stop)
                  for mb in mailboxes]
    errors: list[str] = []

    def run(c: IMAPCollector) -> None:
        try:
            c.run(once=once)
        except IMAPCollectorError as exc:
            errors.append(str(exc))

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    threads = [threading.Thread(target=run, args=(c,), name=f"imap-{i}", daemon=True)
               for i, c in enumerate(collectors)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.5)
    spool.close()
    fetched = sum(c.fetched for c in collectors)
    log.info("imap: %d message(s) fetched from %d mailbox(es)", fetched, len(collectors))
    for e in errors:
        print(f"postwatch: {e}", file=__import__("sys").stderr)
    return 1 if errors else 0
