#!/usr/bin/env python3
"""Ingest from four collector processes into one store: messages per second, SMTP to stored.

Starts --collectors `postwatch collect smtp` processes (each with its own port and spool
folder, one acceptor process each) on one store: a new database on BENCH_POSTGRES_URL's
server with --backend postgresql (the default), or one SQLite file with --backend sqlite
(whose single writer the four spool workers then take turns at). Sends --count messages over
SMTP from --clients client processes, spread evenly over the collectors, and times from the
first send to the moment the last message is stored. The messages are the shared corpus's
bounces, complaints, auto-replies and DMARC failure reports, repeated, each copy made unique
by one extra header (as bench/ingest.py does); aggregate and TLS reports are left out, since
their copies would be one report stored once and the rest ignored. Prints the rate and
whether every message sent is stored, and the BENCH lines of `make bench` (no goal: the
issue asks for the rate).

    python bench/collectors.py [--backend postgresql|sqlite] [--count 20000] [--collectors 4] [--clients 4]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from bench import benchlib  # noqa: E402

KINDS = ("bounce", "complaint", "auto_reply", "dmarc_failure")
PER_SESSION = 100  # messages per SMTP session; a client opens the next one when it is done


def corpus_messages(corpus: Path, count: int) -> list[tuple[bytes, str]]:
    """(message with CRLF line ends, envelope recipient), `count` of them, all different."""
    base = []
    for kind, raw in benchlib.corpus_mail(corpus, KINDS):
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not raw.endswith(b"\r\n"):
            raw += b"\r\n"
        base.append((raw, "fbl@example.com" if kind == "complaint" else "bounces@example.com"))
    return [(b"X-Bench-Copy: %d\r\n" % i + base[i % len(base)][0], base[i % len(base)][1]) for i in range(count)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"a collector exited at start (status {proc.returncode}); see its log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"no collector listens on 127.0.0.1:{port} after {timeout:.0f}s")


def start_collector(folder: Path, url: str, port: int) -> subprocess.Popen:
    folder.mkdir()
    config = folder / "postwatch.toml"
    config.write_text(f'[database]\nurl = "{url}"\n\n[spool]\ndir = "{folder / "spool"}"\n\n'
                      f'[smtp]\nlisten = "127.0.0.1:{port}"\nprocesses = 1\nmessages_per_minute = 0\n'
                      'starttls = false\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    return subprocess.Popen([sys.executable, "-m", "postwatch.cli", "--config", str(config), "collect", "smtp"],
                            cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(folder / "collector.log", "ab"))


def client(args: tuple) -> tuple[int, int]:
    """One client process: its messages over sessions to the collectors in turn; (sent, refused)."""
    messages, ports, go = args
    go.wait()
    sent = refused = 0
    for n, start in enumerate(range(0, len(messages), PER_SESSION)):
        with smtplib.SMTP("127.0.0.1", ports[n % len(ports)], timeout=120) as smtp:
            for raw, rcpt in messages[start:start + PER_SESSION]:
                try:
                    smtp.sendmail("", [rcpt], raw)
                    sent += 1
                except smtplib.SMTPResponseException:
                    refused += 1
    return sent, refused


def warm_up(ports: list[int], engine, timeout: float) -> int:
    """One message to each collector, stored before the clock starts: the spool workers have
    started (schema checked, parsers loaded). Returns how many."""
    for i, port in enumerate(ports):
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            smtp.sendmail("", ["bounces@example.com"], b"Subject: warm-up %d\r\n\r\nwarm-up\r\n" % i)
    deadline = time.monotonic() + timeout
    while stored_count(engine) < len(ports):
        if time.monotonic() > deadline:
            sys.exit("the collectors' spool workers stored nothing; see their logs")
        time.sleep(0.1)
    return len(ports)


def stored_count(engine) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM inbound_messages")).scalar()


def statuses(engine) -> dict[str, int]:
    from sqlalchemy import text

    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT status, count(*) FROM inbound_messages GROUP BY status")).all())


def spooled(folders: list[Path]) -> int:
    return sum(1 for f in folders for _ in (f / "spool" / "new").glob("*.msg"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    ap.add_argument("--count", type=int, default=20000, help="messages to send (default 20000)")
    ap.add_argument("--collectors", type=int, default=4, help="collector processes (default 4)")
    ap.add_argument("--clients", type=int, default=4, help="SMTP client processes (default 4)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the store (default 1800)")
    benchlib.add_backend_argument(ap)
    ap.set_defaults(backend="postgresql")
    a = ap.parse_args()

    from store.config import DatabaseConfig
    from store.engine import forget_engine, make_engine, upgrade

    messages = corpus_messages(a.corpus, a.count)
    with tempfile.TemporaryDirectory(prefix="pw-collectors-") as tmp, \
            benchlib.database_url(a.backend, sqlite_path=f"{tmp}/postwatch.db") as url:
        upgrade(DatabaseConfig(url=url))  # as an operator would (`postwatch db upgrade`) before starting them
        forget_engine(url)  # its connections must not be shared with the client processes forked below
        engine = make_engine(DatabaseConfig(url=url))
        folders = [Path(tmp) / f"collector{i}" for i in range(a.collectors)]
        ports = [free_port() for _ in folders]
        procs = [start_collector(f, url, p) for f, p in zip(folders, ports)]
        exits: list[int | None] = []
        try:
            for proc, port in zip(procs, ports):
                wait_port(port, proc)
            warm = warm_up(ports, engine, a.timeout)
            ctx = multiprocessing.get_context("fork")
            go = ctx.Manager().Event()
            shares = [messages[i::a.clients] for i in range(a.clients)]
            with ctx.Pool(a.clients) as pool:
                pending = pool.map_async(client, [(share, ports[i % len(ports):] + ports[:i % len(ports)], go)
                                                  for i, share in enumerate(shares)])
                time.sleep(0.5)  # the clients are forked and waiting
                t0 = time.perf_counter()
                go.set()
                results = pending.get()
            t_sent = time.perf_counter() - t0
            sent = sum(s for s, _ in results)
            refused = sum(r for _, r in results)
            deadline = time.monotonic() + a.timeout
            stored = 0
            while time.monotonic() < deadline:
                stored = stored_count(engine) - warm
                if stored >= sent and spooled(folders) == 0:
                    break
                time.sleep(0.1)
            t_stored = time.perf_counter() - t0
            by_status = statuses(engine)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    exits.append(proc.wait(60))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    exits.append(None)
            engine.dispose()
        left = spooled(folders)
        failures = sum(open(f / "collector.log", errors="replace").read().count("ingest failed") for f in folders)

    rate = stored / t_stored
    ok = stored == sent and left == 0
    print(f"collectors          {a.collectors} (postwatch collect smtp, one acceptor each) on {a.backend}")
    print(f"clients             {a.clients} processes, {PER_SESSION} messages per session")
    print(f"messages            {a.count} sent: {sent} accepted, {refused} refused")
    print(f"SMTP intake         {sent / t_sent:8.0f} msg/s  ({t_sent:.1f} s to the last 250)")
    print(f"SMTP to stored      {rate:8.0f} msg/s  ({t_stored:.1f} s from the first send to the last stored)")
    print(f"stored == sent      {ok}  ({stored} stored, {left} spool file(s) left)")
    print(f"statuses            {by_status} (with the {len(ports)} warm-up messages, quarantined: no report)")
    print(f"collector exits     {exits}; failed ingest rounds in the logs: {failures}")
    detail = f"{a.collectors} collectors, {sent} messages, stored == sent: {ok}"
    benchlib.report("collectors", a.backend, f"{a.collectors} collectors: SMTP to stored", round(rate), "msg/s", "-",
                    None, detail)
    benchlib.report("collectors", a.backend, f"{a.collectors} collectors: SMTP intake", round(sent / t_sent),
                    "msg/s", "-", None, f"{a.clients} client processes")
    return 0 if ok and exits == [0] * len(procs) else 1


if __name__ == "__main__":
    sys.exit(main())
