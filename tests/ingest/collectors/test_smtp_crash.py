"""`postwatch collect smtp` as a subprocess: the spool worker stores what was accepted, the
same message twice is stored once, and a SIGKILL in the middle of 2,000 messages loses
none that got `250`."""
from __future__ import annotations

import hashlib
import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.ingest.collectors.servers import free_port, wait_port
from tests.ingest.messages import postfix_dsn

EXE = [sys.executable, "-m", "postwatch.cli"]


def start(cwd: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    env.update(POSTWATCH_SMTP__MESSAGES_PER_MINUTE="0", POSTWATCH_SMTP__COMMAND_TIMEOUT="5")
    proc = subprocess.Popen(EXE + ["collect", "smtp", "--listen", f"127.0.0.1:{port}"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=open(cwd / "collector.log", "ab"))
    wait_port(port, proc=proc)
    return proc


def stored(cwd: Path) -> list[str]:
    db = cwd / "var" / "postwatch.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        try:
            return [r[0] for r in con.execute("select sha256 from inbound_messages")]
        except sqlite3.OperationalError:  # the schema is not there yet
            return []


def wait_drained(cwd: Path, expect: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    new = cwd / "var" / "spool" / "new"
    while time.monotonic() < deadline:
        if len(stored(cwd)) >= expect and not any(new.iterdir()):
            return
        time.sleep(0.2)
    raise AssertionError(f"{len(stored(cwd))} of {expect} stored; spool holds {len(list(new.iterdir()))}")


def message(i: int) -> bytes:
    return (f"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces+u{i}=example.net@send.example.com\r\n"
            f"Subject: Undelivered Mail {i}\r\nMessage-ID: <crash-{i}@mx.example.net>\r\n\r\n"
            f"The mail to u{i}@example.net could not be delivered: 550 5.1.1 user unknown\r\n").encode()


def test_accepted_messages_are_stored_and_a_repeat_is_stored_once(tmp_path):
    port = free_port()
    proc = start(tmp_path, port)
    try:
        raw = postfix_dsn().replace(b"\n", b"\r\n")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("", ["bounces+gone=example.net@send.example.com"], raw)
            c.sendmail("", ["bounces+gone=example.net@send.example.com"], raw)
        wait_drained(tmp_path, 1)
        time.sleep(0.5)
        assert stored(tmp_path) == [hashlib.sha256(raw).hexdigest()]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    log = (tmp_path / "collector.log").read_text()
    assert "listening on 127.0.0.1" in log and "accepted" in log and "stopped after" in log


def test_sigkill_in_the_middle_loses_nothing_that_got_250(tmp_path):
    port = free_port()
    proc = start(tmp_path, port)
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

    proc = start(tmp_path, port)  # the restart replays the spool
    try:
        wait_drained(tmp_path, len(acked))
        rows = stored(tmp_path)
        assert len(rows) == len(set(rows))  # each once
        assert set(acked) <= set(rows)  # every acknowledged message is there
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
