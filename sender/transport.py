"""SMTP delivery: to the smarthost, or straight to each destination domain's MX.

One message, one recipient, one conversation: EHLO, STARTTLS (as `sender.starttls` says),
MAIL FROM the signed return path, RCPT, DATA. The answer decides the send-log result:
`2xx` sent, `5xx` bounced (the caller records it as a bounce event), `4xx` tried again with
back-off and `deferred` when it persists, a server that cannot be reached or will not do
what the configuration requires `deferred` as well (a later run tries again). `failed` is
for what no retry can fix on our side of the wire: e.g. a non-ASCII address to a server
without SMTPUTF8.

Per destination domain at most `domain_concurrency` conversations run at once and at most
`domain_rate` start per second. TLS encrypts but does not authenticate the peer (as
Postfix's `encrypt` level): an MX's certificate is rarely one its name verifies.

The same conversation serves postwatch's own notices (alert mail): `relay` hands one message
for several recipients to the smarthost, logging in first when given a `Login`, with a TLS
context that verifies the server when the caller wants it to.
"""
from __future__ import annotations

import re
import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import format_datetime
from typing import Callable

from sender.config import SenderConfig
from store.addresses import domain_of
from store.netloc import format_hostport, parse_hostport

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Result:
    """What became of one recipient: the send-log result and the last reply."""

    result: str  # sent | deferred | bounced | failed
    reply_code: str | None
    reply: str
    stage: str = ""  # connect | tls | mail | rcpt | data
    remote: str = ""  # the host that answered
    tries: int = 1
    # `relay` to several recipients: those the server refused while it took the others, with its reply
    refused: tuple[tuple[str, str], ...] = ()

    @property
    def status(self) -> str | None:
        """The RFC 3463 status in the reply, if any."""
        m = _ENHANCED.match(self.reply or "")
        return ".".join(m.groups()) if m else None


@dataclass(frozen=True)
class Login:
    """AUTH on the smarthost after STARTTLS (smtplib picks the mechanism the server offers)."""

    username: str
    password: str


class _Limits:
    """Per destination domain: a semaphore for concurrency, a clock slot for the rate."""

    def __init__(self, concurrency: int, rate: float, sleep: Callable[[float], None],
                 monotonic: Callable[[], float]) -> None:
        self.concurrency, self.rate = concurrency, rate
        self.sleep, self.monotonic = sleep, monotonic
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next: dict[str, float] = {}

    def slot(self, domain: str) -> threading.BoundedSemaphore:
        with self._lock:
            sem = self._slots.get(domain)
            if sem is None:
                sem = self._slots[domain] = threading.BoundedSemaphore(self.concurrency)
            return sem

    def wait_turn(self, domain: str) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            now = self.monotonic()
            start = max(now, self._next.get(domain, now))
            self._next[domain] = start + 1.0 / self.rate
        if start > now:
            self.sleep(start - now)


class Transport:
    """Delivers one message to one recipient at a time; safe to call from many threads."""

    def __init__(self, config: SenderConfig, *, resolver=None, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, tls_context: ssl.SSLContext | None = None,
                 login: Login | None = None, starttls_key: str = "sender.starttls") -> None:
        self.config = config
        self.login = login
        self.starttls_key = starttls_key  # the setting a refusal for want of STARTTLS names
        self.resolver = resolver
        self.sleep = sleep
        self.limits = _Limits(config.domain_concurrency, config.domain_rate, sleep, monotonic)
        self.helo = config.helo or socket.getfqdn()
        if tls_context is None:
            tls_context = ssl.create_default_context()
            tls_context.check_hostname = False
            tls_context.verify_mode = ssl.CERT_NONE
        self.tls_context = tls_context

    # -- where to ---------------------------------------------------------------------------

    def hosts(self, domain: str) -> list[tuple[str, int]]:
        """The smarthost, or the domain's MX hosts by preference (its A record when it has none)."""
        if self.config.smarthost != "mx":
            return [parse_hostport(self.config.smarthost, key="sender.smarthost")]
        import dns.exception
        import dns.resolver

        resolver = self.resolver or dns.resolver.Resolver()
        try:
            answer = resolver.resolve(domain, "MX")
            records = sorted(answer, key=lambda r: r.preference)
            hosts = [str(r.exchange).rstrip(".") for r in records]
            if hosts == [""]:  # RFC 7505 null MX: the domain takes no mail
                return []
            return [(h, self.config.mx_port) for h in hosts]
        except dns.resolver.NoAnswer:
            return [(domain, self.config.mx_port)]
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.DNSException:
            raise OSError(f"the MX of {domain} could not be looked up") from None

    # -- delivery ---------------------------------------------------------------------------

    def deliver(self, mail_from: str, recipient: str, data: bytes, smtputf8: bool = False) -> Result:
        """Deliver, retrying a `4xx` answer `sender.retries` times with back-off."""
        domain = domain_of(recipient)
        delay = self.config.retry_backoff
        tries = 0
        while True:
            tries += 1
            with self.limits.slot(domain):
                self.limits.wait_turn(domain)
                result = self._once(domain, mail_from, recipient, data, smtputf8)
            if result.result != "deferred" or tries > self.config.retries:
                return _with_tries(result, tries)
            self.sleep(delay)
            delay *= 2

    def relay(self, mail_from: str, recipients: list[str], data: bytes, smtputf8: bool = False) -> Result:
        """One message to all `recipients` in one conversation with the smarthost, tried once
        (the caller retries): `sent` when the server took it for at least one of them, the
        others in `Result.refused`."""
        if self.config.smarthost == "mx" or not recipients:
            raise ValueError("relay needs a smarthost and at least one recipient")
        [(host, port)] = self.hosts("")
        return self._conversation(host, port, mail_from, list(recipients), data, smtputf8)

    def _once(self, domain: str, mail_from: str, recipient: str, data: bytes, smtputf8: bool) -> Result:
        try:
            hosts = self.hosts(domain)
        except OSError as exc:
            return Result("deferred", None, str(exc), "connect")
        if not hosts:
            return Result("bounced", "550", f"5.1.2 the domain {domain} does not exist or takes no mail "
                                            "(no MX, no address)", "connect", domain)
        last = Result("deferred", None, "no host answered", "connect")
        for host, port in hosts:
            result = self._conversation(host, port, mail_from, [recipient], data, smtputf8)
            if result.stage != "connect":
                return result  # a host that answered has decided; the next MX is for hosts that did not
            last = result
        return last

    def _conversation(self, host: str, port: int, mail_from: str, recipients: list[str], data: bytes,
                      smtputf8: bool) -> Result:
        source = (self.config.sending_ip, 0) if self.config.sending_ip else None
        try:
            smtp = smtplib.SMTP(timeout=self.config.timeout, local_hostname=self.helo, source_address=source)
            smtp._host = host  # what STARTTLS names as server_hostname (SNI)
            code, text = smtp.connect(host, port)
        except (OSError, smtplib.SMTPException) as exc:
            return Result("deferred", None, f"cannot connect to {format_hostport(host, port)}: {exc}", "connect", host)
        try:
            if code != 220:
                return _answer(code, text, "connect", host)
            return self._session(smtp, host, mail_from, recipients, data, smtputf8)
        except smtplib.SMTPServerDisconnected as exc:
            return Result("deferred", None, f"{host} closed the connection: {exc}", "data", host)
        except (OSError, ValueError, smtplib.SMTPException) as exc:
            return Result("deferred", None, f"{host}: {type(exc).__name__}: {exc}", "data", host)
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    def _session(self, smtp: smtplib.SMTP, host: str, mail_from: str, recipients: list[str], data: bytes,
                 smtputf8: bool) -> Result:
        code, text = smtp.ehlo()
        if code != 250:
            return _answer(code, text, "mail", host)
        if self.config.starttls != "off":
            if smtp.has_extn("starttls"):
                try:
                    code, text = smtp.starttls(context=self.tls_context)
                except (ssl.SSLError, OSError) as exc:
                    return Result("deferred", None, f"STARTTLS with {host} failed: {exc}", "tls", host)
                if code != 220:
                    if self.config.starttls == "required":
                        return _answer(code if code >= 400 else 454, text, "tls", host, soft=True)
                else:
                    smtp.ehlo()
            elif self.config.starttls == "required":
                return Result("deferred", None, f"{host} does not offer STARTTLS and {self.starttls_key} is "
                                                "required (set it to opportunistic to send in the clear)",
                              "tls", host)
        if self.login is not None:
            try:
                smtp.login(self.login.username, self.login.password)
            except smtplib.SMTPAuthenticationError as exc:
                return _answer(exc.smtp_code, exc.smtp_error, "auth", host, soft=True)
        options = []
        if smtputf8:
            if not smtp.has_extn("smtputf8"):
                return Result("failed", None, f"{host} does not accept non-ASCII addresses (no SMTPUTF8)",
                              "mail", host)
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        elif smtp.has_extn("8bitmime"):
            options = ["BODY=8BITMIME"]
        code, text = smtp.mail(mail_from, options)
        if code != 250:
            return _answer(code, text, "mail", host)
        refused = {}
        for recipient in recipients:
            code, text = smtp.rcpt(recipient)
            if code not in (250, 251):
                refused[recipient] = _answer(code, text, "rcpt", host)
        if len(refused) == len(recipients):
            return refused[recipients[-1]]
        code, text = smtp.data(data)
        return replace(_answer(code, text, "data", host), refused=tuple((r, a.reply) for r, a in refused.items()))


def _answer(code: int, text: bytes | str, stage: str, host: str, soft: bool = False) -> Result:
    reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    reply = " ".join(reply.split())
    if 200 <= code < 300:
        result = "sent"
    elif 500 <= code < 600 and not soft:
        result = "bounced"
    else:
        result = "deferred"
    return Result(result, str(code) if 100 <= code < 1000 else None, reply, stage, host)


def _with_tries(result: Result, tries: int) -> Result:
    return replace(result, tries=tries)


def rejection_dsn(*, recipient: str, return_path: str, original_headers: bytes, result: Result,
                  reporting_mta: str, now: datetime) -> bytes:
    """An RFC 3464 report of a `5xx` the sender met, addressed to the message's return path.

    The sender files its own SMTP-time rejections through the ingest pipeline like any other
    bounce: one classifier, one kind of bounce event, the raw report kept.
    """
    import hashlib

    code = result.reply_code or "550"
    status = result.status or ("5.1.1" if result.stage == "rcpt" else "5.0.0")
    diagnostic = " ".join(f"{code} {result.reply}".split())
    date = format_datetime(now)
    boundary = "=_postwatch_" + hashlib.sha256(f"{return_path}{date}".encode()).hexdigest()[:20]
    remote = f"Remote-MTA: dns; {result.remote}\r\n" if result.remote else ""
    headers = original_headers.decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n").replace("\n", "\r\n")
    text = (f"From: MAILER-DAEMON@{reporting_mta}\r\nTo: <{return_path}>\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nDate: {date}\r\nAuto-Submitted: auto-replied\r\n"
            f"MIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"The sender could not deliver to <{recipient}>.\r\n"
            f"{result.remote or 'The receiving server'} said: {diagnostic}\r\n\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; {reporting_mta}\r\nArrival-Date: {date}\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n{remote}"
            f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/rfc822-headers; charset=utf-8\r\n\r\n{headers}\r\n\r\n"
            f"--{boundary}--\r\n")
    return text.encode("utf-8")
