"""`postwatch serve` as an operator runs it: one subprocess on free loopback ports running the
SMTP collector, the scheduler and the web server, until SIGTERM."""
from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import query
from tests.ingest.collectors.servers import free_port, wait_port
from tests.ingest.messages import postfix_dsn


class Served:
    """A `postwatch serve` subprocess whose stderr is collected as it runs."""

    def __init__(self, tmp_path, url: str, *roles: str, env: dict[str, str] | None = None) -> None:
        self.web, self.smtp = free_port(), free_port()
        self.url = url
        full = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
        full.update({"POSTWATCH_WEB__LISTEN": f"127.0.0.1:{self.web}", "POSTWATCH_SMTP__LISTEN": f"127.0.0.1:{self.smtp}",
                     "POSTWATCH_SMTP__PROCESSES": "1", "POSTWATCH_SMTP__STARTTLS": "false",
                     "POSTWATCH_SCHEDULER__RUN_AT_START": "true", "POSTWATCH_WEB__SECRET": "k" * 32,
                     "POSTWATCH_DATABASE__URL": url})
        full.update(env or {})
        argv = [sys.executable, "-m", "postwatch.cli", "serve"] + [a for r in roles for a in ("--role", r)]
        self.proc = subprocess.Popen(argv, cwd=tmp_path, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web}{path}", timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def until(self, what, timeout: float = 60.0, why: str = ""):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"postwatch serve exited with {self.proc.returncode}:\n{self.log}")
            got = what()
            if got:
                return got
            time.sleep(0.2)
        raise AssertionError(f"{why} not seen within {timeout}s:\n{self.log}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(90)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(10)
        return self.proc.returncode


@pytest.fixture
def served(tmp_path, database):
    started: list[Served] = []

    def start(*roles: str, env: dict[str, str] | None = None) -> Served:
        s = Served(tmp_path, database.url, *roles, env=env)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def _health(s: Served) -> dict | None:
    try:
        status, body = s.get("/healthz")
    except OSError:
        return None
    return json.loads(body) if status in (200, 503) else None


def _smtp_pid(s: Served) -> int | None:
    found = re.findall(r"smtp collector started \(pid (\d+)\)", s.log)
    return int(found[-1]) if found else None


def _stored(s: Served) -> list[tuple]:
    return query(s.url, "select source, kind, status from inbound_messages")


def test_serve_runs_every_role_takes_mail_restarts_a_collector_and_stops_on_sigterm(served):
    s = served()
    wait_port(s.web, timeout=90, proc=s.proc)
    health = s.until(lambda: (h := _health(s)) and h["status"] == "ok" and h, why="healthy")
    assert health["checks"] == {"database": "ok", "smtp": "ok", "scheduler": "ok"}
    wait_port(s.smtp, timeout=60, proc=s.proc)
    with smtplib.SMTP("127.0.0.1", s.smtp, timeout=30) as client:
        client.sendmail("", ["bounces@send.example.com"], postfix_dsn())
    assert s.until(lambda: _stored(s), why="the message in the store") == [("smtp", "bounce", "parsed")]
    # the scheduler runs the jobs at start; /metrics shows the message and the runs
    s.until(lambda: 'postwatch_job_runs_total{job="rollups",result="ok"} 1.0' in s.get("/metrics")[1],
            why="the rollups job in /metrics")
    metrics = s.get("/metrics")[1]
    assert 'postwatch_messages_received_total{kind="bounce",status="parsed"} 1.0' in metrics
    assert s.get("/")[0] == 200 and "Log in" in s.get("/")[1]  # redirected to the login form

    # a collector that dies is reported, then started again
    first = _smtp_pid(s)
    os.kill(first, signal.SIGKILL)
    s.until(lambda: (_smtp_pid(s) or first) != first, why="the smtp collector started again")
    s.until(lambda: (h := _health(s)) and h["status"] == "ok", why="healthy again")
    s.until(lambda: s.log.count("smtp: listening on") == 2, why="the new collector listening")
    assert "the smtp collector exited (status -9)" in s.log

    assert s.stop() == 0, s.log
    log = s.log
    assert "SIGTERM received: stopping collector, scheduler, web" in log
    assert "smtp collector stopped (status 0)" in log, log
    assert "scheduler stopped" in log
    assert "web server stopped" in log and log.rstrip().endswith("stopped")
    assert "Traceback" not in log
    with pytest.raises(OSError):  # nothing is left listening
        smtplib.SMTP("127.0.0.1", s.smtp, timeout=5)


def test_serve_roles_split_the_work(served):
    s = served("collector")
    wait_port(s.smtp, timeout=60, proc=s.proc)
    s.until(lambda: "postwatch serve: collector" in s.log, why="the roles line")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{s.web}/healthz", timeout=5)
    assert s.stop() == 0, s.log
    assert "scheduler started" not in s.log


def test_serve_refuses_an_unknown_role_and_a_bad_listen_address(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    proc = subprocess.run([sys.executable, "-m", "postwatch.cli", "serve", "--role", "mail"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "invalid choice: 'mail'" in proc.stderr
    env["POSTWATCH_WEB__LISTEN"] = "nowhere"
    proc = subprocess.run([sys.executable, "-m", "postwatch.cli", "serve", "--role", "web"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "is not HOST:PORT" in proc.stderr and "Traceback" not in proc.stderr
