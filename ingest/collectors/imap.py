"""The IMAP collector: fetch new messages by UID, spool them, and only then move them away.

Per mailbox: select the folder, fetch UIDs above the last one seen in bounded batches
(sizes first, then bodies, at most FETCH_BYTES of them at a time), write them to the spool
(fsync'd), have them stored (`store` returns each message's status), and move them to the
processed folder, or to the quarantine folder when postwatch could not read them. UIDVALIDITY and the last UID are
kept in a state file, so a restart resumes. Then IDLE (or poll) and do it again. A lost
connection is retried with back-off, and the log says so.
"""
from __future__ import annotations

import json
import logging
import os
import random
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ingest.config import IMAPConfig
from ingest.envelope import Envelope
from ingest.spool import Item, Spool
from ingest.spool_worker import Stored

log = logging.getLogger("ingest.collectors.imap")

# A batch of spool paths -> what became of each (SpoolWorker.store_files)
StoreBatch = Callable[[list[Path]], list[Stored]]
SEARCH_WINDOW = 5000  # UIDs searched at a time: memory stays flat on a huge mailbox
# Bodies fetched at a time, in bytes (a larger message comes alone): a batch of large
# messages (the bounces of one big mailing, each returning it whole) is held a few at a time,
# not imap.batch_size of them at once.
FETCH_BYTES = 32 << 20


class IMAPCollectorError(RuntimeError):
    """One pass (`--once`) failed; the message says which mailbox and why."""


@dataclass(frozen=True)
class Mailbox:
    scheme: str  # imaps (TLS from the start), imap (STARTTLS, required), imap+plain (loopback tests)
    host: str
    port: int
    user: str
    password: str
    folder: str

    @property
    def key(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"

    def __str__(self) -> str:  # never the password
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}/{self.folder}"


def parse_mailbox(url: str, default_password: str = "") -> Mailbox:
    """`imaps://USER[:PASSWORD]@HOST[:PORT]/FOLDER` (user and password percent-encoded)."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    ports = {"imaps": 993, "imap": 143, "imap+plain": 143}
    if scheme not in ports:
        raise ValueError(f"imap.mailboxes: {_redact(url)!r} must start with imaps:// (TLS), imap:// "
                         "(STARTTLS) or imap+plain:// (no TLS, loopback only)")
    if not parts.hostname or not parts.username:
        raise ValueError(f"imap.mailboxes: {_redact(url)!r} needs a user and a host, as in "
                         "imaps://fbl%40example.com@mail.example.com/INBOX")
    password = urllib.parse.unquote(parts.password) if parts.password is not None else default_password
    if not password:
        raise ValueError(f"imap.mailboxes: {_redact(url)!r} has no password; put it in the address "
                         "or set imap.password (POSTWATCH_IMAP__PASSWORD)")
    folder = urllib.parse.unquote(parts.path.lstrip("/")) or "INBOX"
    try:
        port = parts.port or ports[scheme]
    except ValueError:
        raise ValueError(f"imap.mailboxes: {_redact(url)!r} has an invalid port") from None
    return Mailbox(scheme, parts.hostname, port, urllib.parse.unquote(parts.username), password, folder)


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class StateFile:
    """UIDVALIDITY and the last UID handled, per mailbox; written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            self._data = {}

    def get(self, key: str) -> tuple[int | None, int]:
        with self._lock:
            row = self._data.get(key) or {}
            return row.get("uidvalidity"), int(row.get("last_uid") or 0)

    def set(self, key: str, uidvalidity: int, last_uid: int) -> None:
        with self._lock:
            self._data[key] = {"uidvalidity": uidvalidity, "last_uid": last_uid}
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w") as fh:
                json.dump(self._data, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)


class IMAPCollector:
    """One mailbox. `run()` loops until `stop` is set (or once, with `once=True`)."""

    def __init__(self, mailbox: Mailbox, config: IMAPConfig, spool: Spool, store: StoreBatch,
                 state: StateFile, max_message_bytes: int, stop: threading.Event | None = None) -> None:
        self.mailbox = mailbox
        self.config = config
        self.spool = spool
        self.store = store
        self.state = state
        self.max_bytes = max_message_bytes
        self.stop = stop or threading.Event()
        self.fetched = 0
        self.duplicates = 0  # fetched messages whose bytes were stored before (a restart, a copy)
        self.moved = {"processed": 0, "quarantine": 0}

    # -- connection --------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.config.ca_file or None)
        if not self.config.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def connect(self):
        from imapclient import IMAPClient

        mb = self.mailbox
        client = IMAPClient(mb.host, port=mb.port, ssl=mb.scheme == "imaps",
                            ssl_context=self._ssl_context() if mb.scheme != "imap+plain" else None,
                            timeout=self.config.timeout_seconds)
        try:
            if mb.scheme == "imap":
                client.starttls(self._ssl_context())
            client.login(mb.user, mb.password)
            for folder in (self.config.processed_folder, self.config.quarantine_folder):
                if folder and not client.folder_exists(folder):
                    client.create_folder(folder)
                    log.info("imap %s: created folder %s", mb, folder)
        except Exception:
            _quietly(client.logout)
            raise
        log.info("imap %s: connected (%s)", mb, "TLS" if mb.scheme != "imap+plain" else "no TLS")
        return client

    def run(self, once: bool = False) -> None:
        """Collect until `stop`; with `once`, one pass, and a failure is raised, not retried."""
        delay = 1.0
        while not self.stop.is_set():
            client = None
            try:
                client = self.connect()
                delay = 1.0
                while not self.stop.is_set():
                    self.collect(client)
                    if once:
                        return
                    self.wait(client)
            except Exception as exc:  # network, TLS, server, database: retry with back-off
                if once:
                    raise IMAPCollectorError(f"imap {self.mailbox}: {_describe(exc)}") from exc
                log.warning("imap %s: %s; reconnecting in %.0fs", self.mailbox, _describe(exc), delay)
                self.stop.wait(delay)
                delay = min(self.config.backoff_max_seconds, delay * 2 * random.uniform(0.9, 1.1))
            finally:
                if client is not None:
                    _quietly(client.logout)

    def wait(self, client) -> None:
        """Until the server says something changed (IDLE), or poll_seconds (no IDLE)."""
        if client.has_capability("IDLE"):
            client.idle()
            try:
                deadline = time.monotonic() + self.config.idle_seconds
                while not self.stop.is_set() and time.monotonic() < deadline:
                    if client.idle_check(timeout=1.0):
                        break
            finally:
                client.idle_done()
        else:
            self.stop.wait(self.config.poll_seconds)

    # -- one pass ----------------------------------------------------------------------------

    def collect(self, client) -> int:
        """Fetch, spool, store and move everything new; returns how many messages."""
        mb = self.mailbox
        info = client.select_folder(mb.folder)
        validity = int(info.get(b"UIDVALIDITY") or 0)
        uidnext = int(info.get(b"UIDNEXT") or 0)
        known, last = self.state.get(mb.key)
        if known is not None and known != validity:
            log.warning("imap %s: UIDVALIDITY changed (%s -> %s); reading the folder from the start "
                        "(messages stored before are recognised and stored once)", mb, known, validity)
            last = 0
        total = 0
        fetched, duplicates, moved = self.fetched, self.duplicates, dict(self.moved)
        lo = last + 1
        while not self.stop.is_set() and not (uidnext and lo >= uidnext):
            hi = lo + SEARCH_WINDOW - 1
            uids = sorted(u for u in client.search(["UID", f"{lo}:{hi}"]) if u >= lo)
            for start in range(0, len(uids), self.config.batch_size):
                batch = uids[start:start + self.config.batch_size]
                total += self._batch(client, batch)
                last = max(last, batch[-1])
                self.state.set(mb.key, validity, last)
                if self.stop.is_set():
                    return total
            if not uidnext and not uids:
                break
            lo = hi + 1
        if total:
            read, again = self.fetched - fetched, self.duplicates - duplicates
            log.info("imap %s: %d message(s) read: %d new, %d already stored; %d moved to %s, %d to %s",
                     mb, read, read - again, again, self.moved["processed"] - moved["processed"],
                     self.config.processed_folder, self.moved["quarantine"] - moved["quarantine"],
                     self.config.quarantine_folder)
        self.state.set(mb.key, validity, last)
        return total

    def _batch(self, client, uids: list[int]) -> int:
        mb = self.mailbox
        sizes = {u: int(v.get(b"RFC822.SIZE") or 0) for u, v in client.fetch(uids, ["RFC822.SIZE"]).items()}
        wanted = [u for u in uids if u in sizes and sizes[u] <= self.max_bytes]
        too_big = [u for u in uids if u in sizes and u not in wanted]
        for u in too_big:
            log.warning("imap %s: UID %d is %s bytes, over ingest.max_message_bytes; moved to %s unread",
                        mb, u, sizes[u], self.config.quarantine_folder)
        self._move(client, too_big, self.config.quarantine_folder, "quarantine")
        done = 0
        for group in _by_size(wanted, sizes, FETCH_BYTES):
            done += self._fetch(client, group)
        return done

    def _fetch(self, client, uids: list[int]) -> int:
        """Fetch these bodies, spool them, have them stored, move them; how many there were."""
        mb = self.mailbox
        items, order = [], []
        bodies = client.fetch(uids, ["BODY.PEEK[]"])
        for u in uids:
            raw = (bodies.get(u) or {}).pop(b"BODY[]", None)  # taken out: the item holds the one copy
            if raw is not None:  # None: expunged meanwhile
                items.append(Item(raw if isinstance(raw, bytes) else bytes(raw), Envelope("imap", f"imap {mb} uid {u}")))
                order.append(u)
        del bodies
        paths = self.spool.put_many(items)
        del items  # on disk now; the store reads them back a batch of bounded size at a time
        stored = self.store(paths) if paths else []
        quarantine = [u for u, s in zip(order, stored) if s.status == "quarantined"]
        processed = [u for u, s in zip(order, stored) if s.status != "quarantined"]
        self.duplicates += sum(s.duplicate for s in stored)
        self._move(client, processed, self.config.processed_folder, "processed")
        self._move(client, quarantine, self.config.quarantine_folder, "quarantine")
        self.fetched += len(order)
        return len(order)

    def _move(self, client, uids: list[int], folder: str, what: str) -> None:
        if not uids or not folder:
            return
        if client.has_capability("MOVE"):
            client.move(uids, folder)
        else:
            client.copy(uids, folder)
            client.delete_messages(uids)
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(uids)
            else:
                client.expunge()
        self.moved[what] += len(uids)


def _by_size(uids: list[int], sizes: dict[int, int], limit: int):
    """`uids` in order, in runs of at most `limit` bytes (a larger message alone)."""
    run: list[int] = []
    total = 0
    for u in uids:
        if run and total + sizes[u] > limit:
            yield run
            run, total = [], 0
        run.append(u)
        total += sizes[u]
    if run:
        yield run


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "LoginError":
        return f"login refused ({exc}); check the user and password in imap.mailboxes / imap.password"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's certificate is not trusted ({exc.verify_message}); set imap.ca_file, or imap.tls_verify = false for a test server"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, on that port?)"
    if isinstance(exc, socket.timeout):
        return "the server did not answer in time"
    if isinstance(exc, OSError):
        return f"connection failed: {exc.strerror or exc}"
    return f"{name}: {exc}"


def _quietly(fn) -> None:
    try:
        fn()
    except Exception:
        pass
