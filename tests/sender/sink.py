"""An SMTP sink for the sender's tests: aiosmtpd on 127.0.0.1 (or ::1), STARTTLS with a
self-signed certificate, SMTPUTF8, AUTH when given logins, and scripted answers per recipient."""
from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from ingest.collectors.tlscert import ensure_self_signed
from store.netloc import format_hostport
from tests.ingest.collectors.servers import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    mail_options: list[str]


@dataclass
class Handler:
    # recipient -> replies given to its RCPT in turn; the last one repeats ("250 OK" when none)
    rcpt_script: dict[str, list[str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    rcpt_seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.rcpt_seen.append(address)
            script = self.rcpt_script.get(address.lower())
            reply = script.pop(0) if script and len(script) > 1 else (script[0] if script else "250 OK")
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
                                          or envelope.content, session.ssl is not None,
                                          list(envelope.mail_options)))
        return "250 2.0.0 queued"


class Sink:
    def __init__(self, folder: Path, *, tls: bool = True, smtputf8: bool = True, host: str = "127.0.0.1",
                 logins: dict[str, str] | None = None) -> None:
        cert, key = ensure_self_signed(folder, "sink.test")
        context = None
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
        self.handler = Handler()
        handler = self.handler
        self.logged_in: list[str] = []

        def authenticator(server, session, envelope, mechanism, data):
            ok = isinstance(data, LoginPassword) and logins.get(data.login.decode()) == data.password.decode()
            if ok:
                self.logged_in.append(data.login.decode())
            return AuthResult(success=ok, handled=False)  # unhandled: aiosmtpd answers the 535

        class _Controller(Controller):
            def factory(self):
                return SMTP(handler, hostname="sink.test", tls_context=context, require_starttls=False,
                            enable_SMTPUTF8=smtputf8, decode_data=False,
                            authenticator=authenticator if logins else None, auth_require_tls=tls)

        self.host = host
        self.port = free_port()
        self.controller = _Controller(handler, hostname=host, port=self.port)
        self.controller.start()

    @property
    def address(self) -> str:
        return format_hostport(self.host, self.port)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def stop(self) -> None:
        self.controller.stop()
