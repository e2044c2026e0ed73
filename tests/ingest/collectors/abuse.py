"""Hostile SMTP clients, and a probe, against `postwatch collect smtp` on loopback: what the
abuse tests (test_abuse.py) and bench/abuse.py share.

The collector runs as the command an operator runs (a subprocess, its acceptor processes
and spool worker). The clients run in a process of their own (asyncio, raw sockets), so
that the probe (probe.py, another process, from another loopback address) measures how long
the server takes to answer someone else while it is being abused. Loopback has a whole /8,
so clients that should count as many addresses connect from 127.0.1.x and on.

Every message is different (a number in its Message-ID), so what the collector answered
`250` for can be checked in the store afterwards by SHA-256: `Collector.stored()`.
"""
from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tests.ingest.collectors.servers import free_port, wait_port

EXE = [sys.executable, "-m", "postwatch.cli"]
HOST = "127.0.0.1"
FORK = multiprocessing.get_context("fork")


def sources(n: int, first: int = 1) -> list[str]:
    """`n` loopback addresses, 127.0.1.1 and on: clients that count as `n` different hosts."""
    return [f"127.0.{1 + (first - 1 + i) // 250}.{1 + (first - 1 + i) % 250}" for i in range(n)]


def message(tag: str, i: int, shape: str = "plain") -> bytes:
    """A small bounce, unique by `tag` and `i`. `bare_lf`: lines ended by LF alone, one a lone
    dot (which must not end the data); `nul`: NUL bytes in a line; `long`: a 20,000-byte line."""
    head = (f"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces+u{i}=example.net@send.example.com\r\n"
            f"Subject: Undelivered Mail {tag} {i}\r\nMessage-ID: <{tag}-{i}@abuse.test>\r\n\r\n").encode()
    body = b"<u%d@example.net>: host mx.example.net said: 550 5.1.1 User unknown\r\n" % i
    if shape == "bare_lf":
        body += b"a line ended by LF alone\n.\nMAIL FROM:<smuggled@example.org>\nand the end\r\n"
    elif shape == "nul":
        body += b"nul:\x00\x00:bytes\r\n"
    elif shape == "long":
        body += b"y" * 20_000 + b"\r\n"
    return head + body


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


# -- the collector ---------------------------------------------------------------------------

@dataclass
class Collector:
    """`postwatch collect smtp` in `cwd`, on a free port, with `smtp.*` settings from the
    environment (as an operator would set them)."""

    cwd: Path
    url: str
    settings: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen | None = None

    def start(self) -> "Collector":
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
        env["POSTWATCH_DATABASE__URL"] = self.url
        env.update({f"POSTWATCH_SMTP__{k.upper()}": str(v) for k, v in self.settings.items()})
        log = open(self.cwd / "collector.log", "ab")
        self.proc = subprocess.Popen(EXE + ["collect", "smtp", "--listen", f"{HOST}:{self.port}"], cwd=self.cwd,
                                     env=env, stdout=log, stderr=log)
        wait_port(self.port, timeout=60, proc=self.proc)
        time.sleep(0.3)  # the session wait_port opened is counted until its close is seen
        return self

    def stop(self) -> int:
        """SIGTERM, then the spool drained into the store (`collect drain`); the collector's
        exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
        env["POSTWATCH_DATABASE__URL"] = self.url
        subprocess.run(EXE + ["collect", "drain"], cwd=self.cwd, env=env, capture_output=True, timeout=600)
        self.proc = None
        return status

    def stored(self) -> list[str]:
        """The SHA-256 of every message in the store (after `stop`)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [row[0] for row in conn.execute(text("select sha256 from inbound_messages"))]
        finally:
            engine.dispose()

    def log(self) -> str:
        return (self.cwd / "collector.log").read_text(errors="replace")


# -- an SMTP client on asyncio ---------------------------------------------------------------

class Session:
    """One client connection; replies as (code, text), code 0 when the server closed it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, source: str | None = None, timeout: float = 30) -> tuple["Session", int, bytes]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            HOST, port, local_addr=(source, 0) if source else None, limit=1 << 20), timeout)
        session = cls(reader, writer)
        code, text = await session.reply(timeout)
        return session, code, text

    async def reply(self, timeout: float = 30) -> tuple[int, bytes]:
        lines = []
        try:
            while True:
                line = await asyncio.wait_for(self.reader.readline(), timeout)
                if not line:
                    return 0, b"".join(lines)
                lines.append(line)
                if line[3:4] != b"-":
                    return int(line[:3]), b"".join(lines)
        except (ConnectionError, OSError):
            return 0, b"".join(lines)

    async def send(self, data: bytes) -> bool:
        try:
            self.writer.write(data)
            await self.writer.drain()
            return True
        except (ConnectionError, OSError):
            return False

    async def command(self, line: bytes) -> int:
        if not await self.send(line + b"\r\n"):
            return 0
        return (await self.reply())[0]

    async def mail(self, raw: bytes, rcpt: bytes = b"bounces@example.com") -> int:
        """One message (dot-stuffed); the reply to its data, or the first refusal before."""
        for line, ok in ((b"MAIL FROM:<>", 250), (b"RCPT TO:<" + rcpt + b">", 250), (b"DATA", 354)):
            code = await self.command(line)
            if code != ok:
                return code
        stuffed = raw.replace(b"\r\n.", b"\r\n..")
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        if not await self.send(stuffed + b".\r\n"):
            return 0
        return (await self.reply())[0]

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass


# -- the load, in a process of its own -------------------------------------------------------

def run_apart(scenario: Callable[..., Any], *args: Any) -> "Apart":
    """Run `asyncio.run(scenario(*args))` in a forked process; `.result()` waits for it."""
    parent, child = FORK.Pipe(duplex=False)
    proc = FORK.Process(target=_apart_main, args=(child, scenario, args), daemon=True)
    proc.start()
    child.close()
    return Apart(proc, parent)


def _apart_main(conn, scenario, args) -> None:
    try:
        result = asyncio.run(scenario(*args))
    except BaseException as exc:  # said to the parent rather than lost
        result = RuntimeError(f"{type(exc).__name__}: {exc}")
    conn.send(result)
    conn.close()


@dataclass
class Apart:
    proc: Any
    conn: Any

    def result(self, timeout: float = 300) -> Any:
        if not self.conn.poll(timeout):
            self.proc.kill()
            raise TimeoutError(f"the clients did not finish within {timeout:.0f} s")
        out = self.conn.recv()
        self.proc.join(10)
        if isinstance(out, Exception):
            raise out
        return out


@dataclass
class Load:
    """What a group of clients saw: the replies to their data (and to their connections),
    and the SHA-256 of each message answered `250`."""

    replies: Counter = field(default_factory=Counter)
    greetings: Counter = field(default_factory=Counter)
    acked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, other: "Load") -> "Load":
        self.replies.update(other.replies)
        self.greetings.update(other.greetings)
        self.acked += other.acked
        self.notes += other.notes
        return self


async def sessions(port: int, clients: int, messages: int, addresses: list[str], tag: str,
                   shapes: tuple[str, ...] = ("plain",), pipelined: int = 0) -> Load:
    """`clients` sessions at once (spread over `addresses`), each sending `messages` messages
    of the `shapes` in turn; with `pipelined`, that many of the clients send all their
    commands and data in one write without waiting for a reply (as a flood would)."""
    load = Load()

    async def one(c: int) -> None:
        try:
            s, code, _ = await Session.open(port, addresses[c % len(addresses)])
        except (OSError, asyncio.TimeoutError) as exc:
            load.greetings["error"] += 1
            load.notes.append(f"client {c}: {exc}")
            return
        load.greetings[code] += 1
        if code != 220:
            s.close()
            return
        raws = [message(tag, c * messages + i, shapes[(c + i) % len(shapes)]) for i in range(messages)]
        if c < pipelined:
            await _pipelined(s, raws, load)
        else:
            await s.command(b"EHLO client.example.net")
            for raw in raws:
                code = await s.mail(raw)
                load.replies[code] += 1
                if code == 250:
                    load.acked.append(sha(raw))
                elif code in (0, 421):
                    break
            await s.command(b"QUIT")
        s.close()

    await asyncio.gather(*(one(c) for c in range(clients)))
    return load


async def _pipelined(s: Session, raws: list[bytes], load: Load) -> None:
    burst = [b"EHLO burst.example.net\r\n"]
    for raw in raws:
        burst += [b"MAIL FROM:<>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\n", raw, b".\r\n"]
    burst.append(b"QUIT\r\n")
    await s.send(b"".join(burst))
    await s.reply()  # EHLO
    for raw in raws:
        codes = [(await s.reply())[0] for _ in range(4)]  # MAIL, RCPT, DATA (354), the data
        load.replies[codes[3]] += 1
        if codes[3] == 250:
            load.acked.append(sha(raw))
        if 0 in codes:
            break


async def open_many(port: int, count: int, addresses: list[str], hold: float = 1.0) -> Load:
    """`count` connections at once (spread over `addresses`), each held open `hold` seconds
    after all are made: the greetings counted (220, or 421 for those over a limit)."""
    load = Load()
    opened: list[Session] = []

    async def one(c: int) -> None:
        try:
            s, code, text = await Session.open(port, addresses[c % len(addresses)])
        except (OSError, asyncio.TimeoutError) as exc:
            load.greetings["error"] += 1
            load.notes.append(str(exc))
            return
        load.greetings[code] += 1
        if code == 421 and len(load.notes) < 3 and text not in load.notes:
            load.notes.append(text.decode(errors="replace").strip())
        opened.append(s)

    await asyncio.gather(*(one(c) for c in range(count)))
    await asyncio.sleep(hold)
    for s in opened:
        s.close()
    return load


async def rate(port: int, address: str, count: int, tag: str) -> Load:
    """One client sending `count` messages, a session each, as fast as it can: those over
    smtp.messages_per_minute get 421 at MAIL."""
    load = Load()
    for i in range(count):
        s, code, _ = await Session.open(port, address)
        load.greetings[code] += 1
        if code == 220:
            await s.command(b"EHLO rate.example.net")
            raw = message(tag, i)
            code = await s.mail(raw)
            load.replies[code] += 1
            if code == 250:
                load.acked.append(sha(raw))
            await s.command(b"QUIT")
        s.close()
    return load


@dataclass
class Loris:
    """Slow clients: when the server cut each one (seconds after the last thing that reset
    its clock: its last command, or DATA), None for one still connected when it gave up."""

    phase: str
    cut_after: list[float | None] = field(default_factory=list)


async def slow_loris(port: int, count: int, phase: str, interval: float, give_up: float,
                     address: str) -> Loris:
    """`count` clients sending one byte every `interval` seconds: of a command line that never
    ends (`phase` "command"), or of a message after DATA (`phase` "data")."""
    out = Loris(phase)

    async def one() -> float | None:
        s, code, _ = await Session.open(port, address)
        if code != 220:
            return -1.0
        await s.command(b"EHLO slow.example.net")
        drip = b"HELO " + b"x" * 10_000
        if phase == "data":
            await s.command(b"MAIL FROM:<>")
            await s.command(b"RCPT TO:<bounces@example.com>")
            await s.command(b"DATA")
            drip = b"Subject: slow\r\n\r\n" + b"y" * 10_000
        started = time.monotonic()
        try:
            for byte in drip:
                if time.monotonic() - started > give_up:
                    return None
                if not await s.send(bytes([byte])):
                    return time.monotonic() - started
                try:
                    if await asyncio.wait_for(s.reader.read(1024), interval) == b"":
                        return time.monotonic() - started
                except asyncio.TimeoutError:
                    pass
                except (ConnectionError, OSError):
                    return time.monotonic() - started
        finally:
            s.close()
        return None

    out.cut_after = list(await asyncio.gather(*(one() for _ in range(count))))
    return out


@dataclass
class Big:
    """A message of `size` bytes: the reply to it, then the reply to a small message on the
    same connection (0: the connection was closed)."""

    size: int
    how: str
    reply: int = 0
    text: bytes = b""
    after: int = 0
    acked: list[str] = field(default_factory=list)


async def big_message(port: int, size: int, address: str, tag: str, how: str = "plain") -> Big:
    """`how`: "plain" (MAIL FROM:<>, the collector's fast path), "body" (with BODY=8BITMIME,
    read by aiosmtpd's loop) or "size" (SIZE=size declared: refused before any data)."""
    out = Big(size, how)
    s, code, _ = await Session.open(port, address)
    await s.command(b"EHLO big.example.net")
    mail = {"plain": b"MAIL FROM:<>", "body": b"MAIL FROM:<> BODY=8BITMIME", "size": b"MAIL FROM:<> SIZE=%d" % size}
    await s.send(mail[how] + b"\r\n")
    code, out.text = await s.reply()
    if code == 250:
        for line in (b"RCPT TO:<bounces@example.com>", b"DATA"):
            await s.command(line)
        block = (b"x" * 998 + b"\r\n") * 1024  # 1 MB of 1,000-byte lines
        await s.send(b"Subject: big\r\n\r\n")
        sent = 0
        while sent < size:
            if not await s.send(block):
                break
            sent += len(block)
        await s.send(b".\r\n")
        out.reply, out.text = await s.reply(timeout=120)
    else:
        out.reply = code
    raw = message(tag, {"plain": 0, "body": 1, "size": 2}[how])
    out.after = await s.mail(raw) if out.reply else 0
    if out.after == 250:
        out.acked.append(sha(raw))
    s.close()
    return out


async def together(*parts: tuple[Callable[..., Any], tuple]) -> list[Any]:
    """Several scenarios at once in one event loop (one client process)."""
    return list(await asyncio.gather(*(fn(*args) for fn, args in parts)))
