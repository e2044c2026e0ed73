"""`postwatch serve`: the roles of a postwatch installation in one command.

- collector: the SMTP collector and, when imap.mailboxes names any, the IMAP collectors —
  each a child process running `postwatch collect smtp|imap` (they are processes already:
  the SMTP collector forks its acceptors and spool worker, and owns its signals);
- scheduler: the analysis jobs on their schedules, in a thread of this process — while it
  holds the store's scheduler lock; otherwise it stands by (analysis.scheduler.run_forever);
- web: the dashboard, the API and the unsubscribe links (dashboard.server) on waitress, in
  this process's main thread.

A child that dies is started again (after 1 s, doubling up to a minute while it keeps
dying). SIGTERM or Ctrl-C stops the web server after the requests in progress, then sends
SIGTERM to the collectors and lets the scheduler finish its running job.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from store.netloc import HostPortError, format_hostport, parse_hostport

ROLES = ("collector", "scheduler", "web")

log = logging.getLogger("postwatch.serve")
web_log = logging.getLogger("postwatch.web")

STOP_TIMEOUT = 30.0  # seconds a collector gets to finish after SIGTERM before SIGKILL
SCHEDULER_STOP_TIMEOUT = 120.0  # seconds to wait for the running job at shutdown


class ServeError(RuntimeError):
    """A role cannot start; the message says what to change."""


def split_listen(listen: str, key: str = "web.listen") -> tuple[str, int]:
    """`(host, port)` of a listen address; an empty host (`:8050`) listens on every address."""
    try:
        host, port = parse_hostport(listen, key=f"{key}, or --listen")
    except HostPortError as exc:
        raise ServeError(f"the listen address {exc}") from None
    return host or "0.0.0.0", port


@dataclass
class Child:
    """A collector running as `postwatch collect ...`, restarted when it dies."""

    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = 1.0
    next_start: float = 0.0
    last_status: int | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL)
        self.started = time.monotonic()
        log.info("%s collector started (pid %d)", self.name, self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def health(self) -> str | None:
        if self.alive():
            return None
        return f"the {self.name} collector is not running (last exit status {self.last_status}); it is restarted"

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)


@dataclass
class Scheduler:
    """The analysis scheduler in a thread of this process."""

    config: Any
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    error: str | None = None
    backoff: float = 1.0
    next_start: float = 0.0

    def start(self) -> None:
        self.error = None
        self.thread = threading.Thread(target=self._run, name="postwatch-scheduler", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from analysis.jobs import JobContext
        from analysis.scheduler import run_forever
        from store.clock import utcnow
        from store.engine import get_engine, session_factory

        ctx = JobContext(sessions=session_factory(self.config.database), settings=self.config, clock=utcnow)
        try:
            run_forever(ctx, get_engine(self.config.database), self.config.scheduler, self.stop_event)
        except Exception as exc:  # the supervisor starts it again; the health check says why
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("the scheduler stopped: %s", self.error)

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def health(self) -> str | None:
        if self.alive():
            return None
        return f"the scheduler is not running ({self.error or 'stopped'}); it is restarted"


class Supervisor:
    """Starts the roles, restarts what dies, stops everything in order."""

    def __init__(self, config: Any, roles: set[str], cli: list[str]) -> None:
        self.config, self.roles = config, roles
        self.stopping = threading.Event()
        self.children: list[Child] = []
        self.scheduler: Scheduler | None = None
        if "collector" in roles:
            self.children.append(Child("smtp", cli + ["collect", "smtp"]))
            if config.imap.mailboxes:
                self.children.append(Child("imap", cli + ["collect", "imap"]))
            else:
                log.info("imap.mailboxes is empty: no IMAP collector")
        if "scheduler" in roles:
            self.scheduler = Scheduler(config)
        self._lock = threading.Lock()  # nothing is started again once stop() has begun
        self._watcher = threading.Thread(target=self._watch, name="postwatch-supervisor", daemon=True)

    def health_checks(self) -> dict[str, Callable[[], str | None]]:
        checks: dict[str, Callable[[], str | None]] = {c.name: c.health for c in self.children}
        if self.scheduler is not None:
            checks["scheduler"] = self.scheduler.health
        return checks

    def start(self) -> None:
        for child in self.children:
            child.start()
        if self.scheduler is not None:
            self.scheduler.start()
        self._watcher.start()

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            now = time.monotonic()
            for child in self.children:
                if child.proc is None or child.alive():
                    if child.alive() and now - child.started > 60:
                        child.backoff = 1.0  # it has stayed up: the next failure restarts at once
                    continue
                if child.next_start == 0.0:
                    child.last_status = child.proc.returncode
                    child.next_start = now + child.backoff
                    log.error("the %s collector exited (status %s); starting it again in %.0f s", child.name,
                              child.last_status, child.backoff)
                    child.backoff = min(child.backoff * 2, 60.0)
                elif now >= child.next_start:
                    with self._lock:
                        if self.stopping.is_set():
                            return
                        child.next_start = 0.0
                        child.start()
            sched = self.scheduler
            if sched is None or sched.alive():
                continue
            if sched.next_start == 0.0:
                sched.next_start = now + sched.backoff
                log.error("the scheduler ended (%s); starting it again in %.0f s", sched.error or "no error",
                          sched.backoff)
                sched.backoff = min(sched.backoff * 2, 60.0)
            elif now >= sched.next_start:
                with self._lock:
                    if self.stopping.is_set():
                        return
                    sched.next_start = 0.0
                    sched.stop_event = threading.Event()
                    sched.start()

    def stop(self) -> None:
        """SIGTERM to the collectors and the scheduler's stop; wait for both."""
        with self._lock:
            self.stopping.set()
        for child in self.children:
            child.stop()
        if self.scheduler is not None:
            self.scheduler.stop_event.set()
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
                log.info("%s collector stopped (status %s)", child.name, child.proc.returncode)
            except subprocess.TimeoutExpired:
                log.error("the %s collector did not stop within %.0f s; killing it", child.name, STOP_TIMEOUT)
                child.proc.kill()
                child.proc.wait()
        if self.scheduler is not None and self.scheduler.thread is not None:
            self.scheduler.thread.join(SCHEDULER_STOP_TIMEOUT)
            if self.scheduler.thread.is_alive():
                log.error("the scheduler's running job did not end within %.0f s; leaving it",
                          SCHEDULER_STOP_TIMEOUT)


def cli_prefix(config_path: str | None, verbose: int) -> list[str]:
    """How a child runs postwatch: this interpreter, the same file, the same verbosity."""
    argv = [sys.executable, "-m", "postwatch.cli"]
    if config_path:
        argv += ["--config", os.path.abspath(config_path)]
    return argv + ["-v"] * verbose


def serve(config: Any, roles: set[str], *, config_path: str | None = None, verbose: int = 0,
          listen: str | None = None) -> int:
    """Run `roles` until SIGTERM/SIGINT; the exit status."""
    from store.engine import upgrade

    unknown = roles - set(ROLES)
    if unknown or not roles:
        raise ServeError(f"unknown role {', '.join(sorted(unknown)) or '(none)'}; the roles are "
                         + ", ".join(ROLES))
    if "web" in roles:
        host, port = split_listen(listen or config.web.listen)
    upgrade(config.database)  # once, before any role reads or writes
    supervisor = Supervisor(config, roles, cli_prefix(config_path, verbose))
    server = None
    if "web" in roles:
        server = _web_server(config, host, port, supervisor.health_checks())

    def stop(signum, _frame) -> None:
        if supervisor.stopping.is_set():
            log.info("%s received: already stopping", signal.Signals(signum).name)
            return
        log.info("%s received: stopping %s", signal.Signals(signum).name, ", ".join(r for r in ROLES if r in roles))
        supervisor.stopping.set()
        if server is not None:
            raise SystemExit(0)  # waitress's loop ends on SystemExit and waits for its threads

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        supervisor.start()
        log.info("postwatch serve: %s", ", ".join(r for r in ROLES if r in roles))
        if server is not None:
            web_log.info("serving on http://%s (database %s)",
                         format_hostport(host, getattr(server, "effective_port", port)), config.database.url)
            server.run()  # until stop() raises SystemExit in it; waitress then waits for its threads
        else:
            while not supervisor.stopping.wait(1.0):
                pass
    except SystemExit:
        pass
    finally:
        if server is not None:
            server.close()
            web_log.info("web server stopped")
        supervisor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return 0


def _web_server(config: Any, host: str, port: int, health: dict[str, Callable[[], str | None]]):
    from waitress.server import create_server as waitress_server

    from dashboard.server import create_server
    from sender.web import access_log

    app = create_server(config, health=health)
    try:
        return waitress_server(access_log(app), host=host, port=port, threads=config.web.threads,
                               ident="postwatch", clear_untrusted_proxy_headers=True)
    except OSError as exc:
        raise ServeError(f"cannot listen on {format_hostport(host, port)}: {exc.strerror or exc} "
                         "(is another server using it? set web.listen)") from None
