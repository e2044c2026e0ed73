"""Running a collector as a service: the listener, the spool, and a spool worker process.

`run_smtp` binds the port, starts the spool worker in a child process (parsing and the
database run beside intake, and a slow database never delays a `250`), forks the SMTP
acceptor processes that share the socket, and serves until SIGTERM or SIGINT. What is
still in the spool at exit is ingested at the next start.
"""
from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from ingest.collectors.limits import ClientLimits, default_processes
from ingest.collectors.smtp import FeedbackHandler, parse_listen
from ingest.collectors.smtp_protocol import default_hostname, make_factory
from ingest.collectors.tlscert import tls_context
from ingest.spool import GroupCommitter, Spool

log = logging.getLogger("ingest.collectors")


class CollectorError(RuntimeError):
    """A collector cannot start; the message says what to change."""


# -- the spool worker process --------------------------------------------------------------

def _die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send `sig` to this process when its parent dies (even by SIGKILL)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# How long the spool worker leaves the CPU to a burst of SMTP sessions before it stores
# beside them anyway (lag, not loss: the spool is on disk).
INTAKE_FIRST_SECONDS = 30.0


class _IntakeFirst:
    """The spool worker's pause: SMTP sessions are open, and have been for less than `seconds`."""

    def __init__(self, limits: ClientLimits | None, seconds: float = INTAKE_FIRST_SECONDS) -> None:
        self.limits = limits
        self.seconds = seconds
        self.since: float | None = None

    def __call__(self) -> bool:
        if self.limits is None or not self.limits.total:
            self.since = None
            return False
        now = time.monotonic()
        if self.since is None:
            self.since = now
        return now - self.since < self.seconds


def _worker_main(config: Any, parent: int, listening: int | None, limits: ClientLimits | None) -> None:
    _die_with_parent()
    if listening is not None:  # not the worker's: it must not keep the port open after the collector
        os.close(listening)
    # Intake comes first: a `250` waits for a client, a stored message waits for nobody.
    # The worker takes what CPU the acceptors leave and catches up when the burst is over.
    os.nice(10)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop

    def watch_parent() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    worker = _spool_worker(config, workers=1)
    worker.run_forever(stop, pause=_IntakeFirst(limits))


def _spool_worker(config: Any, workers: int):
    """The spool cleared of what a killed process left (every collector's first step: the
    SMTP collector, its spool worker, the IMAP collector, drain), the schema brought up to
    date, and a worker that stores the spool through the pipeline."""
    from ingest.pipeline import Pipeline
    from ingest.spool_worker import SpoolWorker
    from store.engine import session_factory, upgrade

    spool = Spool(config.spool.dir)
    spool.recover()
    upgrade(config.database)
    pipeline = Pipeline(session_factory(config.database), config.ingest, domains=config.domains)
    return SpoolWorker(spool, pipeline, batch_size=config.spool.batch_size, workers=workers)


def start_worker(config: Any, listening: socket.socket | None = None,
                 limits: ClientLimits | None = None) -> multiprocessing.process.BaseProcess:
    fd = None if listening is None else listening.fileno()
    proc = multiprocessing.get_context("fork").Process(
        target=_worker_main, args=(config, os.getpid(), fd, limits), name="postwatch-spool-worker", daemon=True)
    proc.start()
    return proc


# -- SMTP ----------------------------------------------------------------------------------

def bind(listen: str) -> socket.socket:
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise CollectorError(str(exc)) from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + 3.0
    while True:
        try:
            return socket.create_server((host, port), family=family, backlog=1024)
        except PermissionError:
            raise CollectorError(f"cannot listen on {listen}: permission denied (ports below 1024 need "
                                 "root or CAP_NET_BIND_SERVICE)") from None
        except OSError as exc:
            # a collector killed a moment ago may still be closing its copy of the socket
            if exc.errno == errno.EADDRINUSE and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise CollectorError(f"cannot listen on {listen}: {exc.strerror} (is another server using "
                                 "it? set smtp.listen)") from None


@dataclass
class _Acceptors:
    """What every acceptor process shares: made before the fork."""

    config: Any
    sock: socket.socket
    hostname: str
    context: Any
    limits: ClientLimits


def run_smtp(config: Any, drain: bool = True) -> int:
    """Serve SMTP until SIGTERM/SIGINT. Returns the exit status.

    `smtp.processes` acceptors (one per core by default) share the listening socket: each
    runs its own event loop, spool writer and group committer; the per-client limits live
    in shared memory (`ingest.collectors.limits`). This process supervises them and the
    spool worker, restarting what dies.
    """
    spool = Spool(config.spool.dir)
    hostname = default_hostname(config.smtp)
    try:
        context = tls_context(config.smtp, spool.dir, hostname)
    except ValueError as exc:
        raise CollectorError(str(exc)) from None
    sock = bind(config.smtp.listen)
    spool.recover()
    waiting = spool.count_messages()
    if waiting:
        log.info("spool: %d message(s) left from the last run; ingesting them", waiting)
    processes = default_processes(config.smtp.processes)
    shared = _Acceptors(config, sock, hostname, context, ClientLimits(config.smtp, processes=processes))
    worker = start_worker(config, sock, shared.limits) if drain else None  # before any thread starts (fork)
    log.info("smtp: listening on %s as %s; accepting %s; STARTTLS %s; spool %s; %d acceptor process(es)",
             config.smtp.listen, hostname, ", ".join(config.smtp.accept),
             "off" if context is None else ("required" if config.smtp.require_tls else "offered"), spool.dir,
             processes)
    try:
        if processes == 1:
            _acceptor(shared, 0, worker)
        else:
            _supervise(shared, processes, worker)
    finally:
        if worker is not None:
            worker.terminate()
            worker.join(30)
        s = shared.limits.stats_total()
        log.info("smtp: stopped after %d session(s): %d message(s) accepted, %d recipient(s) refused, "
                 "%d session(s) refused; %d message(s) wait in the spool", s["sessions"], s["accepted"],
                 s["refused_recipients"], s["refused_sessions"], spool.count_messages())
        spool.close()
    return 0


def _acceptor(shared: _Acceptors, index: int, worker: multiprocessing.process.BaseProcess | None = None,
              supervisor: int | None = None) -> None:
    """Serve on the shared socket until SIGTERM/SIGINT (or until the `supervisor` pid is gone)."""
    shared.limits.bind(index)
    # The log records every accepted message; its lines name no thread, process or source
    # line, so do not look those up per record (the logging HOWTO's "Optimization").
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    spool = Spool(shared.config.spool.dir)
    committer = GroupCommitter(spool)
    handler = FeedbackHandler(shared.config.smtp, committer, shared.limits)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(shared, handler, worker, index, supervisor))
    finally:
        committer.stop()
        spool.close()
        shared.limits.record_stats(handler.stats)


def _loop_factory():
    """uvloop's event loop when it is installed: a quarter less CPU per SMTP session than
    asyncio's own (which is used otherwise, and by the tests' aiosmtpd Controller)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _acceptor_main(shared: _Acceptors, index: int, parent: int) -> None:
    # A collector killed outright dies whole: an acceptor must not go on serving (and
    # holding the port) after its supervisor. What it acknowledged is on disk already.
    _die_with_parent(signal.SIGKILL)
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        return
    _acceptor(shared, index, supervisor=parent)


def _start_acceptor(shared: _Acceptors, index: int) -> multiprocessing.process.BaseProcess:
    proc = multiprocessing.get_context("fork").Process(
        target=_acceptor_main, args=(shared, index, os.getpid()), name=f"postwatch-smtp-{index}", daemon=False)
    proc.start()
    return proc


def _supervise(shared: _Acceptors, processes: int, worker: multiprocessing.process.BaseProcess | None) -> None:
    """Start the acceptors, restart any that dies, and stop them all on SIGTERM/SIGINT."""
    stopping = []
    previous = {sig: signal.signal(sig, lambda *_: stopping.append(True)) for sig in (signal.SIGTERM, signal.SIGINT)}
    acceptors = [_start_acceptor(shared, i) for i in range(processes)]
    started = [time.monotonic()] * processes
    last_worker_restart = 0.0
    try:
        while not stopping:
            time.sleep(0.2)
            for i, proc in enumerate(acceptors):
                if proc.is_alive() or stopping:
                    continue
                log.error("smtp: acceptor %d exited (status %s); starting it again", i, proc.exitcode)
                shared.limits.release(i)  # its sessions died with it
                spool = Spool(shared.config.spool.dir)
                try:
                    spool.recover()  # and the file it was writing, if any, with them
                finally:
                    spool.close()
                if time.monotonic() - started[i] < 5:
                    time.sleep(1)  # dying at start: do not spin
                acceptors[i], started[i] = _start_acceptor(shared, i), time.monotonic()
            if worker is not None and not worker.is_alive() and not stopping:
                if time.monotonic() - last_worker_restart > 10:
                    log.error("spool worker exited (status %s); starting it again", worker.exitcode)
                    last_worker_restart = time.monotonic()
                    worker = start_worker(shared.config, shared.sock, shared.limits)
    finally:
        for proc in acceptors:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: each finishes the messages it is writing, then exits
        for proc in acceptors:
            proc.join(15)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _serve(shared: _Acceptors, handler: FeedbackHandler, worker, index: int, supervisor: int | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    config = shared.config
    server = await loop.create_server(make_factory(handler, config.smtp, shared.hostname, shared.context),
                                      sock=shared.sock, backlog=1024)
    last_restart = 0.0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
        if supervisor is not None and os.getppid() != supervisor:
            log.error("smtp: acceptor %d: the supervisor is gone; stopping", index)
            break
        if worker is not None and not worker.is_alive() and not stop.is_set():
            if time.monotonic() - last_restart > 10:
                log.error("spool worker exited (status %s); starting it again", worker.exitcode)
                last_restart = time.monotonic()
                worker = start_worker(config, shared.sock, shared.limits)
    server.close()
    await asyncio.sleep(0)  # let sessions in DATA finish their fsync and reply
    deadline = time.monotonic() + 5
    while handler.limits.open_here() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def drain_spool(config: Any) -> tuple[int, int]:
    """Store everything waiting in the spool; (stored, left)."""
    worker = _spool_worker(config, workers=config.ingest.workers)
    n = worker.drain()
    return n, worker.spool.count_messages()


# -- IMAP ----------------------------------------------------------------------------------

def run_imap(config: Any, once: bool = False) -> int:
    """Collect from every mailbox in imap.mailboxes (a thread each) until SIGTERM/SIGINT."""
    from ingest.collectors.imap import IMAPCollector, IMAPCollectorError, StateFile, parse_mailbox

    if not config.imap.mailboxes:
        raise CollectorError("no mailbox to read: set imap.mailboxes, e.g. "
                             "[\"imaps://fbl%40example.com@mail.example.com/INBOX\"], and imap.password")
    try:
        mailboxes = [parse_mailbox(url, config.imap.password) for url in config.imap.mailboxes]
    except ValueError as exc:
        raise CollectorError(str(exc)) from None
    worker = _spool_worker(config, workers=1)
    spool = worker.spool
    left = worker.drain()
    if left:
        log.info("spool: %d message(s) left from the last run stored", left)
    lock = threading.Lock()

    def store(paths):
        with lock:  # one writer: the store is shared by the mailboxes' threads
            return worker.store_files(paths)

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
        print(f"postwatch: {e}", file=sys.stderr)
    return 1 if errors else 0
