"""The SMTP collector: aiosmtpd for the report addresses, never a relay.

The handler checks recipients against `smtp.accept`, enforces the per-client limits, and
hands each message to the spool's group committer; the `250` goes out only once the
message is fsync'd on disk. What a message is, the pipeline decides later. The protocol
that calls the handler, and the server's setup, are in `ingest.collectors.smtp_protocol`.
"""
from __future__ import annotations

import collections
import fnmatch
import logging
import re
from dataclasses import dataclass, field

from ingest.collectors.limits import ClientLimits
from ingest.config import SMTPConfig
from ingest.envelope import Envelope
from ingest.spool import GroupCommitter, Item, SpoolError
from store.addresses import split_address
from store.netloc import HostPortError, parse_hostport

log = logging.getLogger("ingest.collectors.smtp")

# Control characters (NUL, CR, TAB...) and bytes that are not UTF-8 (read as surrogates)
# have no place in a host name or an address: refused at once, never carried into a spool
# envelope and from there into the store, which cannot hold them (no database takes a lone
# surrogate; PostgreSQL text takes no NUL).
CONTROL = re.compile(r"[\x00-\x1f\x7f\udc80-\udcff]")
NOT_TEXT = "control characters and bytes that are not UTF-8 are not allowed"


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:2525`; no host: every IPv4 address) -> (host, port), or a
    `HostPortError` (a ValueError) saying what is wrong."""
    try:
        host, port = parse_hostport(listen)
    except HostPortError as exc:
        why = str(exc).removeprefix(f"{listen!r} is not HOST:PORT: ")
        raise HostPortError(f"smtp.listen {listen!r} is not HOST:PORT (for example 127.0.0.1:2525): {why}") from None
    return host or "0.0.0.0", port


def bracketed(address: str | None) -> str:
    """An envelope address as the log shows it: `<a@example.net>`, and `<>` for the null
    reverse path (aiosmtpd keeps it as "<>")."""
    return "<>" if not address or address == "<>" else f"<{address}>"


class RecipientPolicy:
    """`smtp.accept` patterns (`*` and `?` wildcards, case-insensitive) against an address."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = tuple(p.strip().lower() for p in patterns if p.strip())
        self._regex = re.compile("|".join(fnmatch.translate(p) for p in self.patterns) or r"(?!)")

    def allows(self, address: str) -> bool:
        address = address.strip().lower()
        local, domain = split_address(address)
        return bool(local and domain) and bool(self._regex.fullmatch(address))


@dataclass
class Stats:
    sessions: int = 0
    accepted: int = 0
    refused_recipients: int = 0
    refused_sessions: int = 0
    by_reply: collections.Counter = field(default_factory=collections.Counter)


def peer_ip(session) -> str:
    """The client's IP address, as text."""
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


class FeedbackHandler:
    """aiosmtpd handler: recipients, limits, and the spool. Knows nothing about parsing."""

    def __init__(self, config: SMTPConfig, committer: GroupCommitter, limits: ClientLimits | None = None) -> None:
        self.config = config
        self.policy = RecipientPolicy(config.accept)
        self.committer = committer
        self.limits = limits or ClientLimits(config)
        self.stats = Stats()
        # the hooks the protocol (smtp_protocol.CollectorSMTP) calls, looked up once, not per connection
        self.hooks = {name: getattr(self, "handle_" + name) for name in ("EHLO", "MAIL", "RCPT", "DATA")}

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        return self.ehlo(server, session, envelope, hostname, responses)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        return self.mail(server, session, envelope, address, mail_options)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return self.rcpt(server, session, envelope, address, rcpt_options)

    # the hooks' work, callable without a coroutine (the protocol's fast path)
    def ehlo(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        # postwatch takes no AUTH: a report address needs none, and offering it invites guessing
        return [r for r in responses if not r[4:].upper().startswith("AUTH")]

    def mail(self, server, session, envelope, address, mail_options):
        ip = peer_ip(session)
        if CONTROL.search(address):
            self.stats.by_reply["501"] += 1
            return f"501 5.1.7 Bad sender address syntax ({NOT_TEXT})"
        why = self.limits.message_refusal(ip)
        if why:
            log.warning("smtp %s: refused MAIL FROM %s: %s", ip, bracketed(address), why)
            self.stats.by_reply["421"] += 1
            server.loop.call_soon(server.transport.close)
            return f"421 4.7.0 {why}"
        envelope.mail_from = address  # "<>" for the null reverse path of DSNs
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    def rcpt(self, server, session, envelope, address, rcpt_options):
        ip = peer_ip(session)
        if CONTROL.search(address):
            self.stats.by_reply["501"] += 1
            return f"501 5.1.3 Bad recipient address syntax ({NOT_TEXT})"
        if len(envelope.rcpt_tos) >= self.config.max_recipients:
            self.stats.by_reply["452"] += 1
            return f"452 4.5.3 Too many recipients (at most {self.config.max_recipients} per message)"
        if not self.policy.allows(address):
            self.stats.refused_recipients += 1
            self.stats.by_reply["550"] += 1
            log.info("smtp %s: refused RCPT TO <%s>: not a feedback address of this server", ip, address)
            return f"550 5.1.1 <{address}>: recipient not accepted here (this server only takes feedback)"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        ip = peer_ip(session)
        mail_from = "" if envelope.mail_from == "<>" else envelope.mail_from
        item = Item(envelope.original_content or b"", Envelope(
            "smtp", f"smtp {ip} helo={session.host_name}", mail_from, tuple(envelope.rcpt_tos),
            client_address=ip, helo=session.host_name))
        try:
            path = await self.committer.submit(item)
        except SpoolError as exc:
            log.error("smtp %s: message from %s NOT accepted: %s", ip, bracketed(envelope.mail_from), exc)
            self.stats.by_reply["451"] += 1
            return "451 4.3.0 Temporary failure writing the message to disk; try again later"
        self.limits.count_message(ip)
        self.stats.accepted += 1
        self.stats.by_reply["250"] += 1
        log.info("smtp %s: accepted %d bytes from %s for %s as %s", ip, len(item.raw),
                 bracketed(envelope.mail_from), ", ".join(f"<{r}>" for r in envelope.rcpt_tos), path.name)
        return f"250 2.0.0 OK queued as {path.stem}"

