"""`postwatch collect smtp` as a subprocess: the spool worker stores what was accepted, the
same message twice is stored once, a SIGKILL in the middle of 2,000 messages loses none
that got `250`, and the per-client limits hold across its acceptor processes."""
from __future__ import annotations

import hashlib
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import query
from tests.ingest.collectors.servers import free_port, wait_port
from tests.ingest.messages import postfix_dsn

EXE = [sys.executable, "-m", "postwatch.cli"]


def start(cwd: Path, port: int, url: str, **settings: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    env["POSTWATCH_DATABASE__URL"] = url
    # two acceptor processes whatever the machine, so that the tests see them share the work
    env.update(POSTWATCH_SMTP__MESSAGES_PER_MINUTE="0", POSTWATCH_SMTP__COMMAND_TIMEOUT="5",
               POSTWATCH_SMTP__PROCESSES="2")
    env.update({f"POSTWATCH_SMTP__{k.upper()}": v for k, v in settings.items()})
    proc = subprocess.Popen(EXE + ["collect", "smtp", "--listen", f"127.0.0.1:{port}"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=open(cwd / "collector.log", "ab"))
    wait_port(port, proc=proc)
    return proc


def stored(url: str) -> list[str]:
    return [r[0] for r in query(url, "select sha256 from inbound_messages")]


def wait_drained(cwd: Path, url: str, expect: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    new = cwd / "var" / "spool" / "new"
    while time.monotonic() < deadline:
        if len(stored(url)) >= expect and not any(new.iterdir()):
            return
        time.sleep(0.2)
    raise AssertionError(f"{len(stored(url))} of {expect} stored; spool holds {len(list(new.iterdir()))}")


def message(i: int) -> bytes:
    return (f"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces+u{i}=example.net@send.example.com\r\n"
            f"Subject: Undelivered Mail {i}\r\nMessage-ID: <crash-{i}@mx.example.net>\r\n\r\n"
            f"The mail to u{i}@example.net could not be delivered: 550 5.1.1 user unknown\r\n").encode()


def test_accepted_messages_are_stored_and_a_repeat_is_stored_once(tmp_path, database):
    port = free_port()
    proc = start(tmp_path, port, database.url)
    try:
        raw = postfix_dsn().replace(b"\n", b"\r\n")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("", ["bounces+gone=example.net@send.example.com"], raw)
            c.sendmail("", ["bounces+gone=example.net@send.example.com"], raw)
        wait_drained(tmp_path, database.url, 1)
        time.sleep(0.5)
        assert stored(database.url) == [hashlib.sha256(raw).hexdigest()]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    log = (tmp_path / "collector.log").read_text()
    assert "listening on 127.0.0.1" in log and "accepted" in log and "stopped after" in log


def test_sigkill_in_the_middle_loses_nothing_that_got_250(tmp_path, database):
    port = free_port()
    proc = start(tmp_path, port, database.url)
    acked: list[str] = []
    lock = threading.Lock()
    total, senders = 2000, 4

    def send(first: int) -> None:
        c = None
        for i in range(first, total, senders):
            raw = message(i)
            try:
                if c is None:
                    c = smtplib.SMTP("127.0.0.1", port, timeout=10)
                c.sendmail("", [f"bounces+u{i}=example.net@send.example.com"], raw)
            except (smtplib.SMTPException, OSError):
                return  # the server died: this message and the rest are not acknowledged
            with lock:
                acked.append(hashlib.sha256(raw).hexdigest())

    threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
    for t in threads:
        t.start()
    while len(acked) < total // 2 and any(t.is_alive() for t in threads):
        time.sleep(0.01)
    proc.kill()  # SIGKILL: no clean-up at all
    proc.wait()
    for t in threads:
        t.join(30)
    assert total // 2 <= len(acked) < total

    proc = start(tmp_path, port, database.url)  # the restart replays the spool
    try:
        wait_drained(tmp_path, database.url, len(acked))
        rows = stored(database.url)
        assert len(rows) == len(set(rows))  # each once
        assert set(acked) <= set(rows)  # every acknowledged message is there
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_limits_hold_across_acceptor_processes(tmp_path, database):
    port = free_port()
    proc = start(tmp_path, port, database.url, sessions_per_ip="3", messages_per_minute="4")
    time.sleep(0.5)  # the probe that saw the port open is a session until its close is seen
    try:
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(6)]
        greetings = [s.recv(1024)[:3] for s in held]
        assert sorted(greetings) == [b"220"] * 3 + [b"421"] * 3
        for s in held:
            s.close()
        time.sleep(0.5)
        for i in range(4):  # a connection each: they land in either process
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
                c.sendmail("", ["fbl@example.com"], message(i))
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("x")
            code, reply = c.docmd("MAIL FROM:<a@example.net>")
        assert code == 421 and b"limit 4 a minute" in reply
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    log = (tmp_path / "collector.log").read_text()
    assert "2 acceptor process(es)" in log
    assert "stopped after" in log and "4 message(s) accepted" in log and "3 session(s) refused" in log


def test_starttls_on_the_service_event_loop(tmp_path, database):
    port = free_port()
    proc = start(tmp_path, port, database.url)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c.starttls(context=ctx)
            c.sendmail("", ["bounces+gone=example.net@send.example.com"], message(7))
        wait_drained(tmp_path, database.url, 1)
        assert stored(database.url) == [hashlib.sha256(message(7)).hexdigest()]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def niceness(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[16])


def test_a_killed_acceptor_is_restarted_and_its_sessions_forgotten(tmp_path, database):
    port = free_port()
    proc = start(tmp_path, port, database.url, sessions_per_ip="2")
    time.sleep(0.5)
    try:
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        assert [s.recv(1024)[:3] for s in held] == [b"220", b"220"]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the spool worker is niced (once it has started)
            acceptors = [p for p in children(proc.pid) if niceness(p) == 0]
            if len(acceptors) == 2:
                break
            time.sleep(0.1)
        assert len(acceptors) == 2
        for p in acceptors:
            os.kill(p, signal.SIGKILL)  # their sessions die with them, uncounted
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            now = [p for p in children(proc.pid) if niceness(p) == 0]
            if len(now) == 2 and not set(now) & set(acceptors):
                break
            time.sleep(0.1)
        time.sleep(0.5)
        for _ in range(2):
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
                c.sendmail("", ["fbl@example.com"], message(1))
        for s in held:
            s.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    log = (tmp_path / "collector.log").read_text()
    assert log.count("exited (status -9); starting it again") == 2
