"""The SMTP collector, running for real (aiosmtpd's Controller on loopback), spoken to with
smtplib, raw sockets and swaks."""
from __future__ import annotations

import shutil
import smtplib
import socket
import ssl
import subprocess
import time
from dataclasses import replace

import pytest
from aiosmtpd.controller import Controller

from ingest.collectors.limits import ClientLimits
from ingest.collectors.smtp import FeedbackHandler, RecipientPolicy, parse_listen
from ingest.collectors.smtp_protocol import CollectorSMTP
from ingest.collectors.tlscert import tls_context
from ingest.config import SMTPConfig
from ingest.spool import GroupCommitter, Spool
from tests.conftest import need
from tests.ingest.collectors.servers import free_port
from tests.ingest.messages import postfix_dsn

FAST = SMTPConfig(command_timeout=2.0, data_timeout=2.0, max_message_bytes=100_000, max_recipients=3,
                  sessions_per_ip=10, messages_per_minute=0)


class Running:
    def __init__(self, tmp_path, config: SMTPConfig, loop=None):
        self.spool = Spool(tmp_path / "spool")
        self.committer = GroupCommitter(self.spool)
        self.handler = FeedbackHandler(config, self.committer)
        context = tls_context(config, self.spool.dir, "mx.test")
        handler, cfg = self.handler, config

        class _Controller(Controller):
            def factory(self):
                return CollectorSMTP(handler, config=cfg, hostname="mx.test", tls_context=context,
                                     loop=self.loop)

        self.port = free_port()
        self.controller = _Controller(self.handler, hostname="127.0.0.1", port=self.port, loop=loop)
        self.controller.start()

    def stop(self):
        self.controller.stop()
        self.committer.stop()
        self.spool.close()

    def client(self, **kw) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=10, **kw)

    def raw(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.recv(1024)  # greeting
        return s


@pytest.fixture(params=["asyncio", "uvloop"])
def server(tmp_path, request):
    """The collector on asyncio's event loop, and on uvloop's (which `collect smtp` uses)."""
    loop = None
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed; collect smtp uses asyncio's loop")
        loop = uvloop.new_event_loop()
    running = Running(tmp_path, FAST, loop)
    yield running
    running.stop()


def make_server(tmp_path, **changes) -> Running:
    return Running(tmp_path, replace(FAST, **changes))


def dialog(sock: socket.socket, data: bytes, wait: float = 0.3) -> bytes:
    sock.sendall(data)
    time.sleep(wait)
    sock.settimeout(2)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
            sock.settimeout(0.3)
    except (socket.timeout, ConnectionResetError):
        pass
    return out


# -- what is accepted, what is refused -------------------------------------------------------

def test_an_accepted_message_is_in_the_spool_with_its_envelope_when_250_is_answered(server):
    raw = postfix_dsn().replace(b"\n", b"\r\n")
    with server.client() as c:
        c.ehlo("mta.example.net")
        code, reply = c.docmd("MAIL FROM:<>")
        assert code == 250
        assert c.docmd("RCPT TO:<bounces+gone=example.net@send.example.com>")[0] == 250
        c.putcmd("DATA")
        assert c.getreply()[0] == 354
        c.send(raw.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        code, reply = c.getreply()
    assert code == 250 and b"queued as" in reply
    # the reply came after the file was durable: it is there now, nothing else to wait for
    [path] = server.spool.pending()
    entry = server.spool.read(path)
    assert entry.raw == raw
    env = entry.envelope
    assert env.source == "smtp" and env.mail_from == ""
    assert env.rcpt_tos == ("bounces+gone=example.net@send.example.com",)
    assert "127.0.0.1" in env.origin and "mta.example.net" in env.origin
    assert env.client_address == "127.0.0.1" and env.helo == "mta.example.net"


def test_dot_stuffing_is_undone_and_an_empty_message_is_kept(server):
    with server.client() as c:
        c.ehlo("x")
        c.sendmail("a@example.net", ["fbl@example.com"], b"Subject: dots\r\n\r\n.leading\r\n..two\r\nend.\r\n")
        c.sendmail("a@example.net", ["fbl@example.com"], b"")
    raws = sorted(server.spool.read(p).raw for p in server.spool.pending())
    # smtplib stuffs one dot per line start; the server removes exactly one
    assert raws == [b"\r\n", b"Subject: dots\r\n\r\n.leading\r\n..two\r\nend.\r\n"]


@pytest.mark.parametrize("rcpt", ["someone@example.com", "postmaster@example.com", "bounces@", "fbl@evil.example@x"])
def test_other_recipients_get_550_and_it_is_never_a_relay(server, rcpt):
    with server.client() as c:
        c.ehlo("x")
        c.docmd("MAIL FROM:<a@example.net>")
        code, reply = c.docmd(f"RCPT TO:<{rcpt}>")
        assert code in (550, 553), reply
        if code == 550:
            assert reply.startswith(b"5.1.1")
        c.docmd("RCPT TO:<dmarc@example.com>")
        c.docmd("RSET")
    assert server.spool.pending() == []


def test_the_default_accept_patterns_take_the_report_addresses_only():
    policy = RecipientPolicy(SMTPConfig().accept)
    for ok in ("bounces+x=y.com@send.example.com", "Bounces@Example.COM", "fbl@a.b", "dmarc-reports@x.org",
               "tls-reports@x.org", "abuse-reports@x.org", "dmarc@x.org"):
        assert policy.allows(ok), ok
    for no in ("info@example.com", "bouncesx@example.com", "fbl", "dmarc@", "x-dmarc@x.org"):
        assert not policy.allows(no), no


def test_size_limit_is_announced_and_enforced_with_552(server):
    with server.client() as c:
        c.ehlo("x")
        assert c.esmtp_features["size"] == "100000"
        code, reply = c.docmd("MAIL FROM:<a@example.net> SIZE=200000")
        assert code == 552
        c.docmd("RSET")
        c.docmd("MAIL FROM:<a@example.net>")
        c.docmd("RCPT TO:<fbl@example.com>")
        c.putcmd("DATA")
        c.getreply()
        c.send(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 150 + b".\r\n")
        code, reply = c.getreply()
        assert code == 552 and reply.startswith(b"5.3.4")
        assert c.noop()[0] == 250  # the session goes on
    assert server.spool.pending() == []


def test_too_many_recipients_get_452(server):
    with server.client() as c:
        c.ehlo("x")
        c.docmd("MAIL FROM:<a@example.net>")
        codes = [c.docmd(f"RCPT TO:<bounces+{i}@example.com>")[0] for i in range(5)]
    assert codes == [250, 250, 250, 452, 452]


def test_starttls_with_the_generated_certificate(server):
    with server.client() as c:
        c.ehlo("x")
        assert c.has_extn("starttls")
        assert not c.has_extn("auth")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c.starttls(context=ctx)
        c.ehlo("x")
        assert not c.has_extn("auth") and not c.has_extn("starttls")
        c.sendmail("a@example.net", ["dmarc@example.com"], b"Subject: over tls\r\n\r\nhi\r\n")
    [path] = server.spool.pending()
    assert server.spool.read(path).raw.startswith(b"Subject: over tls")
    assert (server.spool.dir / "tls" / "selfsigned.crt").is_file()


def test_require_tls_refuses_mail_before_starttls(tmp_path):
    srv = make_server(tmp_path, require_tls=True)
    try:
        with srv.client() as c:
            c.ehlo("x")
            assert c.docmd("MAIL FROM:<a@example.net>")[0] == 530
    finally:
        srv.stop()


def test_configured_certificate_must_come_with_its_key(tmp_path):
    with pytest.raises(ValueError, match="tls_cert and smtp.tls_key go together"):
        tls_context(replace(FAST, tls_cert="/x.pem"), tmp_path, "h")


# -- swaks ------------------------------------------------------------------------------------

def swaks(port: int, *args: str) -> subprocess.CompletedProcess:
    need(shutil.which("swaks") is not None, "swaks is not installed (Debian package swaks)")
    return subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--timeout", "10", *args],
                          capture_output=True, text=True, timeout=60)


def test_swaks_delivers_with_and_without_starttls_and_is_refused_elsewhere(server):
    ok = swaks(server.port, "--to", "bounces+a=b.example@send.example.com", "--from", "")
    assert ok.returncode == 0, ok.stdout
    tls = swaks(server.port, "-tls", "--to", "fbl@example.com", "--from", "fbl@provider.example")
    assert tls.returncode == 0, tls.stdout
    assert "TLS started" in tls.stdout
    refused = swaks(server.port, "--to", "ceo@example.com")
    assert refused.returncode != 0
    assert "550 5.1.1" in refused.stdout
    assert len(server.spool.pending()) == 2


# -- limits and hostile input -----------------------------------------------------------------

def test_sessions_over_the_per_client_limit_get_421_and_others_are_served(tmp_path):
    srv = make_server(tmp_path, sessions_per_ip=3)
    try:
        held = [srv.raw() for _ in range(3)]
        extra = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        assert extra.recv(1024).startswith(b"421 4.7.0")
        assert extra.recv(1024) == b""  # closed
        held.pop().close()
        time.sleep(0.2)
        with srv.client() as c:
            assert c.noop()[0] == 250
        for s in held:
            s.close()
    finally:
        srv.stop()


def test_a_client_opening_500_connections_is_held_to_its_limit(tmp_path):
    server = make_server(tmp_path, command_timeout=60)
    socks, refused = [], 0
    for _ in range(500):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        socks.append(s)
    for s in socks:
        if s.recv(1024).startswith(b"421"):
            refused += 1
    assert refused == 500 - FAST.sessions_per_ip
    for s in socks:
        s.close()
    time.sleep(0.3)
    with server.client() as c:
        c.ehlo("x")
        c.sendmail("a@example.net", ["fbl@example.com"], b"Subject: still here\r\n\r\n.\r\n")
    assert server.handler.stats.refused_sessions == refused
    server.stop()


def test_messages_over_the_per_minute_limit_get_421(tmp_path):
    srv = make_server(tmp_path, messages_per_minute=2)
    try:
        with srv.client() as c:
            c.ehlo("x")
            for _ in range(2):
                c.sendmail("a@example.net", ["fbl@example.com"], b"Subject: x\r\n\r\nx\r\n")
            code, reply = c.docmd("MAIL FROM:<a@example.net>")
        assert code == 421 and b"too many messages" in reply
    finally:
        srv.stop()


def test_client_limits_forget_the_minute_that_passed():
    now = [1000.0]
    limits = ClientLimits(SMTPConfig(messages_per_minute=2), clock=lambda: now[0])
    limits.count_message("192.0.2.1")
    limits.count_message("192.0.2.1")
    assert limits.message_refusal("192.0.2.1")
    assert limits.message_refusal("192.0.2.2") is None
    now[0] += 61
    assert limits.message_refusal("192.0.2.1") is None


def test_a_10000_character_command_line_gets_500_and_the_session_goes_on(server):
    s = server.raw()
    out = dialog(s, b"EHLO " + b"a" * 10_000 + b"\r\nNOOP\r\n")
    assert out.startswith(b"500") and b"250" in out
    s.close()


def test_nul_bytes_malformed_commands_and_bare_lf(server):
    s = server.raw()
    out = dialog(s, b"EH\x00LO x\r\nMAIL FROM:<>\r\nHELO x\nMAIL FROM:<a@b\x00c>\r\nXYZZY\r\n")
    replies = [line[:3] for line in out.split(b"\r\n") if line]
    assert replies[0] == b"500"  # EH\0LO
    assert replies[1] == b"503"  # MAIL before HELO
    assert replies[2] == b"250"  # HELO ended by a bare LF is understood
    assert replies[3] in (b"501", b"553", b"250")
    assert replies[-1] == b"500"  # unknown command
    s.close()


@pytest.mark.parametrize("command, reply", [
    (b"EHLO mx\x00.example.net", b"501 5.5.4"), (b"HELO mx\x00.example.net", b"501 5.5.4"),
    (b"EHLO caf\xe9.example.net", b"501 5.5.4"), (b"EHLO mx\x01x", b"501 5.5.4"),
    (b"EHLO ok\r\nMAIL FROM:<a\x00b@example.net>", b"501 5.1.7"),
    (b"EHLO ok\r\nMAIL FROM:<caf\xe9@example.net>", b"501 5.1.7"),
    (b"EHLO ok\r\nMAIL FROM:<>\r\nRCPT TO:<bounces+a\x00b@example.com>", b"501 5.1.3"),
    (b"EHLO ok\r\nMAIL FROM:<>\r\nRCPT TO:<bounces+caf\xe9@example.com>", b"501 5.1.3"),
    (b"EHLO ok\r\nMAIL FROM:<>\r\nRCPT TO:<bounces+a\x00b@example.com> NOTIFY=NEVER", b"555"),  # aiosmtpd's
])
def test_control_characters_and_bytes_not_utf8_in_names_and_addresses_get_501(server, command, reply):
    """They would go into the spool's envelope, which no store can hold (a lone surrogate) or
    PostgreSQL cannot (a NUL); a UTF-8 address is fine (SMTPUTF8)."""
    s = server.raw()
    out = dialog(s, command + b"\r\n")
    assert out.split(b"\r\n")[-2].startswith(reply), out
    out = dialog(s, b"RSET\r\nEHLO ok\r\nMAIL FROM:<>\r\nRCPT TO:<bounces+caf\xc3\xa9@example.com>\r\n")
    assert out.endswith(b"250 2.1.5 OK\r\n"), out
    s.close()


def test_bare_lf_dot_does_not_end_the_data(server):
    s = server.raw()
    dialog(s, b"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\n")
    out = dialog(s, b"Subject: smuggle\r\n\r\nline\n.\nMAIL FROM:<evil@x>\r\nmore\r\n.\r\n")
    assert out.startswith(b"250 2.0.0")
    [path] = server.spool.pending()
    assert server.spool.read(path).raw == b"Subject: smuggle\r\n\r\nline\n.\nMAIL FROM:<evil@x>\r\nmore\r\n"
    s.close()


def test_long_lines_and_nul_bytes_in_a_message_are_kept(server):
    body = b"Subject: long\r\n\r\n" + b"y" * 10_000 + b"\r\nnul:\x00:\r\n"
    s = server.raw()
    dialog(s, b"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\n")
    assert dialog(s, body + b".\r\n").startswith(b"250")
    [path] = server.spool.pending()
    assert server.spool.read(path).raw == body


def test_a_pipelined_flood_of_junk_is_cut_off(server):
    s = server.raw()
    out = dialog(s, b"BOGUS\r\n" * 2000, wait=0.5)
    assert b"502 5.5.1 Too many unrecognized commands" in out
    with server.client() as c:
        assert c.noop()[0] == 250


def test_a_noop_flood_is_cut_off_with_421(server):
    s = server.raw()
    out = dialog(s, b"NOOP\r\n" * 200, wait=0.5)
    assert b"421 4.7.0 NOOP sent too many times" in out


def test_pipelined_transactions_are_all_answered(server):
    s = server.raw()
    one = b"MAIL FROM:<a@example.net>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\nSubject: p\r\n\r\nx\r\n.\r\n"
    out = dialog(s, b"EHLO x\r\n" + one * 20, wait=1.0)
    assert out.count(b"250 2.0.0 OK queued") == 20
    assert len(server.spool.pending()) == 20


def test_a_client_that_never_finishes_data_is_disconnected(server):
    s = server.raw()
    dialog(s, b"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<fbl@example.com>\r\nDATA\r\n")
    s.sendall(b"Subject: slow\r\n\r\nand then nothing")
    s.settimeout(FAST.data_timeout + 3)
    started = time.monotonic()
    assert s.recv(1024) == b""  # closed by the server
    assert time.monotonic() - started < FAST.data_timeout + 3
    assert server.spool.pending() == []
    with server.client() as c:
        assert c.noop()[0] == 250


def test_an_idle_client_is_disconnected(server):
    s = server.raw()
    s.settimeout(FAST.command_timeout + 3)
    assert s.recv(1024) == b""


@pytest.mark.parametrize("arg", [
    "<a@b>", "<a@b> SIZE=100 BODY=8BITMIME", "<a@b>junk", "<>", "<> SIZE=10", "<A+x=y@Ex-ample.COM>",
    "<bounces+t-abc123@send.example.com>", "<a..b@c>", "<.a@b>", "<a@b.>", "<\"quoted x\"@example.com>",
    "<a@[192.0.2.1]>", "a@b", "<@route:a@b>", "<a@b\x00c>", "<a b@c>", "<" + "x" * 70 + "@example.com>",
    "<(comment)a@b>", "<a@b", "", "<caf\xe9@example.com>",
])
def test_simple_addresses_read_directly_match_aiosmtpd(arg):
    from aiosmtpd.smtp import SMTP

    ours = CollectorSMTP.__new__(CollectorSMTP)
    theirs = SMTP.__new__(SMTP)
    for proto in (ours, theirs):
        proto.local_part_limit = 64
    got, want = ours._getaddr(arg), theirs._getaddr(arg)
    assert got[0] == want[0] and (got[1] or "").split() == (want[1] or "").split()


def test_listen_addresses_are_checked():
    assert parse_listen("127.0.0.1:2525") == ("127.0.0.1", 2525)
    assert parse_listen("[::1]:25") == ("::1", 25)
    assert parse_listen(":25") == ("0.0.0.0", 25)
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_listen("localhost")
