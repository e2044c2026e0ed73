"""SMTP delivery against a real server: STARTTLS, retries of 4xx, 5xx, direct to MX, limits."""
from dataclasses import replace

from sender.config import SenderConfig
from sender.transport import Transport, _Limits, rejection_dsn
from tests.sender.helpers import sink  # noqa: F401
from tests.sender.sink import Sink

MSG = b"From: a@send.example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


def transport(address, sleeps=None, **kw):
    config = SenderConfig(smarthost=address, retry_backoff=1.0, timeout=10.0, **kw)
    return Transport(config, sleep=(sleeps.append if sleeps is not None else lambda s: None))


def test_delivered_over_starttls(sink):
    result = transport(sink.address).deliver("bounces+t-x@send.example.com", "b@example.org", MSG)
    assert (result.result, result.reply_code, result.stage) == ("sent", "250", "data")
    [got] = sink.received
    assert got.tls and got.mail_from == "bounces+t-x@send.example.com" and got.rcpt_tos == ["b@example.org"]


def test_a_4xx_is_tried_again_with_back_off(sink):
    sink.handler.rcpt_script["b@example.org"] = ["451 4.7.1 greylisted", "451 4.7.1 greylisted", "250 OK"]
    sleeps = []
    result = transport(sink.address, sleeps, retries=2).deliver("r@send.example.com", "b@example.org", MSG)
    assert result.result == "sent" and result.tries == 3
    assert sleeps == [1.0, 2.0]
    assert len(sink.received) == 1


def test_a_4xx_that_persists_is_deferred(sink):
    sink.handler.rcpt_script["b@example.org"] = ["452 4.2.2 mailbox full"]
    sleeps = []
    result = transport(sink.address, sleeps, retries=1).deliver("r@send.example.com", "b@example.org", MSG)
    assert (result.result, result.reply_code, result.status, result.tries) == ("deferred", "452", "4.2.2", 2)
    assert sink.received == []


def test_a_5xx_is_a_bounce_and_its_report_classifies(sink, pipeline):
    sink.handler.rcpt_script["b@example.org"] = ["550 5.1.1 <b@example.org>: Recipient address rejected"]
    result = transport(sink.address).deliver("r@send.example.com", "b@example.org", MSG)
    assert (result.result, result.reply_code, result.stage, result.tries) == ("bounced", "550", "rcpt", 1)
    from ingest.parse import parse_bytes

    dsn = rejection_dsn(recipient="b@example.org", return_path="r@send.example.com",
                        original_headers=MSG.split(b"\r\n\r\n")[0], result=result, reporting_mta="pw.test",
                        now=__import__("datetime").datetime(2026, 3, 1))
    parsed = parse_bytes(dsn)
    assert parsed.kind == "bounce"
    [event] = parsed.events
    assert (event["recipient"], event["reason"], event["hard_bounce"]) == ("b@example.org", "userunknown", True)


def test_starttls_required_refuses_a_server_without_it(tmp_path):
    plain = Sink(tmp_path, tls=False)
    try:
        refused = transport(plain.address).deliver("r@send.example.com", "b@example.org", MSG)
        assert refused.result == "deferred" and "STARTTLS" in refused.reply
        assert plain.received == []
        sent = transport(plain.address, starttls="opportunistic").deliver("r@send.example.com", "b@example.org", MSG)
        assert sent.result == "sent" and not plain.received[0].tls
    finally:
        plain.stop()


def test_direct_to_mx(sink, dns_server):
    import dns.resolver

    dns_server.add("example.org", "MX", "10 localhost.")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], dns_server.port
    config = SenderConfig(smarthost="mx", mx_port=sink.port, timeout=10.0)
    t = Transport(config, resolver=resolver, sleep=lambda s: None)
    assert t.hosts("example.org") == [("localhost", sink.port)]
    assert t.deliver("r@send.example.com", "b@example.org", MSG).result == "sent"
    gone = t.deliver("r@send.example.com", "b@no-such-domain.example", MSG)  # NXDOMAIN
    assert gone.result == "bounced" and gone.reply.startswith("5.1.2")


def test_a_server_that_cannot_be_reached_is_deferred():
    from tests.ingest.collectors.servers import free_port

    result = transport(f"127.0.0.1:{free_port()}", retries=0).deliver("r@x.example", "b@example.org", MSG)
    assert result.result == "deferred" and result.stage == "connect"


def test_smtputf8_needs_the_extension(tmp_path):
    ascii_only = Sink(tmp_path, smtputf8=False)
    try:
        result = transport(ascii_only.address).deliver("r@send.example.com", "chloé@example.org", MSG, smtputf8=True)
        assert result.result == "failed" and "SMTPUTF8" in result.reply
    finally:
        ascii_only.stop()


def test_rate_limit_spaces_the_starts_per_domain():
    clock, sleeps = [100.0], []

    def sleep(s):
        sleeps.append(round(s, 3))

    limits = _Limits(2, 4.0, sleep, lambda: clock[0])  # 4 a second: one every 0.25 s
    for _ in range(3):
        limits.wait_turn("example.org")
    limits.wait_turn("example.net")  # another domain has its own budget
    assert sleeps == [0.25, 0.5]
    assert replace(SenderConfig(), domain_rate=0).domain_rate == 0


def test_a_smarthost_named_by_its_ipv6_address(tmp_path):
    v6 = Sink(tmp_path, host="::1")
    try:
        assert v6.address.startswith("[::1]:")
        result = transport(v6.address).deliver("r@send.example.com", "b@example.org", MSG)
        assert (result.result, result.remote) == ("sent", "::1") and v6.received[0].tls
    finally:
        v6.stop()


def test_the_smarthost_setting_is_host_port_or_mx():
    import pytest

    assert SenderConfig(smarthost="[2001:db8::25]:587").smarthost == "[2001:db8::25]:587"
    assert Transport(SenderConfig(smarthost="[::1]:2525")).hosts("example.org") == [("::1", 2525)]
    for bad in ("relay.example.com", "::1", "[::1]", ":25", "relay.example.com:smtp", "[::1]x:25"):
        with pytest.raises(ValueError, match=r"sender\.smarthost"):
            SenderConfig(smarthost=bad)


def test_relay_sends_one_message_to_several_recipients_after_a_login(tmp_path):
    from sender.transport import Login

    relay = Sink(tmp_path, logins={"alerts": "s3cret"})
    relay.handler.rcpt_script["gone@example.org"] = ["550 5.1.1 no such user"]
    try:
        config = SenderConfig(smarthost=relay.address, timeout=10.0, retries=0)
        result = Transport(config, login=Login("alerts", "s3cret")).relay(
            "pw@ops.example", ["a@example.org", "gone@example.org", "b@example.org"], MSG)
        assert result.result == "sent" and result.refused == (("gone@example.org", "5.1.1 no such user"),)
        [got] = relay.received
        assert got.rcpt_tos == ["a@example.org", "b@example.org"] and got.tls and relay.logged_in == ["alerts"]
        wrong = Transport(config, login=Login("alerts", "guess")).relay("pw@ops.example", ["a@example.org"], MSG)
        assert (wrong.result, wrong.stage, wrong.reply_code) == ("deferred", "auth", "535")
        assert len(relay.received) == 1
        everyone_refused = Transport(config).relay("pw@ops.example", ["gone@example.org"], MSG)
        assert (everyone_refused.result, everyone_refused.stage) == ("bounced", "rcpt")
    finally:
        relay.stop()


def test_a_refusal_for_want_of_starttls_names_the_setting_given(tmp_path):
    plain = Sink(tmp_path, tls=False)
    try:
        config = SenderConfig(smarthost=plain.address, timeout=10.0, retries=0)
        result = Transport(config, starttls_key="alerts.smtp_starttls").relay("pw@ops.example", ["a@example.org"], MSG)
        assert result.result == "deferred" and "alerts.smtp_starttls is required" in result.reply
        assert plain.received == []
    finally:
        plain.stop()
