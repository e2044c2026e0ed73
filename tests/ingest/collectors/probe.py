"""The probe of the abuse tests and bench/abuse.py: a client of its own, in a process of its
own, from another loopback address (127.0.0.2), that opens a session every few tenths of a
second and sends one small message while others abuse the collector. Every reply, from the
greeting to the `250` after the data, is timed, and the worst wait is kept."""
from __future__ import annotations

import socket
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.ingest.collectors.abuse import FORK, HOST, message, sha

PROBE_SOURCE = "127.0.0.2"


@dataclass
class ProbeReport:
    rounds: int = 0
    worst: float = 0.0  # seconds: the longest wait for any one reply
    worst_step: str = ""
    refused: Counter = field(default_factory=Counter)  # a reply that was not the expected one
    failures: list[str] = field(default_factory=list)  # no reply at all (timeout, reset)
    acked: list[str] = field(default_factory=list)


class Probe:
    """A client of its own, in a process of its own: a session every `every` seconds from
    127.0.0.2 (greeting, EHLO, MAIL, RCPT, DATA, the message, QUIT), each reply timed."""

    def __init__(self, port: int, every: float = 0.2) -> None:
        self.port, self.every = port, every
        self.tag = f"probe-{time.time_ns()}"  # its messages differ from every other probe's
        self._stop = FORK.Event()
        parent, child = FORK.Pipe(duplex=False)
        self._conn = parent
        self._proc = FORK.Process(target=self._main, args=(child,), daemon=True)

    def __enter__(self) -> "Probe":
        self._proc.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._proc.is_alive():
            self._stop.set()
            self._proc.join(30)

    def stop(self) -> ProbeReport:
        self._stop.set()
        report = self._conn.recv() if self._conn.poll(60) else ProbeReport(failures=["the probe never reported"])
        self._proc.join(10)
        return report

    def _main(self, conn) -> None:
        report = ProbeReport()
        i = 0
        while not self._stop.is_set():
            started = time.monotonic()
            self._round(report, i)
            i += 1
            self._stop.wait(max(0.0, self.every - (time.monotonic() - started)))
        conn.send(report)

    def _round(self, report: ProbeReport, i: int) -> None:
        raw = message(self.tag, i)
        steps = [("connect and greeting", None, 220), ("EHLO", b"EHLO probe.example.net\r\n", 250),
                 ("MAIL", b"MAIL FROM:<>\r\n", 250), ("RCPT", b"RCPT TO:<fbl@example.com>\r\n", 250),
                 ("DATA", b"DATA\r\n", 354), ("the message", raw + b".\r\n", 250), ("QUIT", b"QUIT\r\n", 221)]
        report.rounds += 1
        sock = None
        try:
            t0 = time.monotonic()
            sock = socket.create_connection((HOST, self.port), timeout=10, source_address=(PROBE_SOURCE, 0))
            buf = b""
            for name, data, expect in steps:
                if data is not None:
                    t0 = time.monotonic()
                    sock.sendall(data)
                code, buf = _read_reply(sock, buf)
                waited = time.monotonic() - t0
                if waited > report.worst:
                    report.worst, report.worst_step = waited, name
                if code != expect:
                    report.refused[f"{name}: {code}"] += 1
                    return
                if name == "the message":
                    report.acked.append(sha(raw))
        except OSError as exc:
            report.failures.append(f"round {i}: {type(exc).__name__}: {exc}")
        finally:
            if sock is not None:
                sock.close()


def _read_reply(sock: socket.socket, buf: bytes) -> tuple[int, bytes]:
    """The code of the next whole reply (multi-line ones included), and what is left over."""
    while True:
        while b"\r\n" in buf:
            line, buf = buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return int(line[:3] or 0), buf
        chunk = sock.recv(65536)
        if not chunk:
            return 0, b""
        buf += chunk
