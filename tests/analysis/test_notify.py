"""Alert delivery to real servers on loopback: an aiosmtpd sink and a local HTTP server."""
from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import socket
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from analysis.notify import notify
from analysis.config import AlertsConfig
from store.alerts import Alert, raise_alert, resolve_alert
from store.checks import AlertDelivery

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Sink:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_sink():
    from aiosmtpd.controller import Controller

    handler = _Sink()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.address = f"127.0.0.1:{port}"
    yield handler
    controller.stop()


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        if server.failures_left > 0:
            server.failures_left -= 1
            self.send_response(503)
            self.end_headers()
            return
        server.received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received, server.failures_left = [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield server
    server.shutdown()
    server.server_close()


def _raise(store, rule="complaint_rate", key="news.example", severity="warning", now=NOW):
    with store.begin() as s:
        alert, _ = raise_alert(s, rule=rule, dimension="sending_domain", key=key, severity=severity,
                               message=f"Complaint rate 0.15% for sending_domain {key}", now=now,
                               details={"rate": 0.0015})
        return alert.id


def test_alert_mail_reaches_the_smarthost(store, smtp_sink):
    cfg = AlertsConfig(smtp_host=smtp_sink.address, mail_from="postwatch@ops.example",
                       mail_to=("deliverability@ops.example", "oncall@ops.example"))
    alert_id = _raise(store)
    result = notify(store, cfg, NOW, sleep=lambda s: None)
    assert (result["sent"], result["failed"]) == (1, 0)
    [env] = smtp_sink.envelopes
    assert env.mail_from == "postwatch@ops.example"
    assert env.rcpt_tos == ["deliverability@ops.example", "oncall@ops.example"]
    msg = email.message_from_bytes(env.content, policy=email.policy.default)
    assert msg["Subject"] == "[postwatch] WARNING complaint_rate: sending_domain news.example"
    assert msg["Message-ID"] and msg["Date"] and msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "text/plain"
    assert "Complaint rate 0.15% for sending_domain news.example" in msg.get_content()
    with store() as s:
        assert s.get(Alert, alert_id).notified_at is not None
    # nothing new: nothing sent again
    assert notify(store, cfg, NOW + timedelta(minutes=5))["sent"] == 0
    assert len(smtp_sink.envelopes) == 1


def test_escalation_and_resolution_are_told_once_each(store, smtp_sink):
    cfg = AlertsConfig(smtp_host=smtp_sink.address, mail_to=("a@ops.example",))
    _raise(store)
    notify(store, cfg, NOW)
    _raise(store, severity="critical", now=NOW + timedelta(minutes=10))  # escalated in place
    _raise(store, severity="warning", now=NOW + timedelta(minutes=20))  # not lower: nothing to tell
    notify(store, cfg, NOW + timedelta(minutes=20))
    with store.begin() as s:
        resolve_alert(s, s.scalars(select(Alert)).one(), NOW + timedelta(minutes=30))
    notify(store, cfg, NOW + timedelta(minutes=30))
    notify(store, cfg, NOW + timedelta(minutes=40))
    subjects = [email.message_from_bytes(e.content, policy=email.policy.default)["Subject"]
                for e in smtp_sink.envelopes]
    assert subjects == ["[postwatch] WARNING complaint_rate: sending_domain news.example",
                        "[postwatch] CRITICAL complaint_rate: sending_domain news.example (escalated)",
                        "[postwatch] RESOLVED complaint_rate: sending_domain news.example"]


def test_webhook_gets_slack_compatible_json(store, webhook):
    cfg = AlertsConfig(webhook_url=webhook.url)
    _raise(store, key="a.example", severity="critical")
    _raise(store, key="b.example")
    assert notify(store, cfg, NOW)["sent"] == 2
    [(ctype, payload)] = webhook.received  # one post for the batch
    assert ctype == "application/json"
    assert payload["text"] == "postwatch: 2 alerts: 1 critical, 1 warning"
    assert payload["blocks"][0]["type"] == "header"
    assert "a.example" in payload["blocks"][1]["text"]["text"]  # the critical one first
    assert [a["key"] for a in payload["postwatch"]["alerts"]] == ["a.example", "b.example"]


def test_a_dead_webhook_is_retried_next_run_not_lost(store, webhook):
    naps = []
    dead = dataclasses.replace(AlertsConfig(), webhook_url=f"http://127.0.0.1:{_free_port()}/hook",
                               retries=3, retry_backoff=0.5, timeout=2)
    alert_id = _raise(store)
    result = notify(store, dead, NOW, sleep=naps.append)  # connection refused, three times
    assert (result["sent"], result["failed"]) == (0, 1) and "failed" in result["errors"][0]
    assert naps == [0.5, 1.0]
    with store() as s:
        [d] = s.scalars(select(AlertDelivery)).all()
        assert d.sent_at is None and d.attempts == 3 and d.last_error
        assert s.get(Alert, alert_id).notified_at is None

    webhook.failures_left = 3  # the server is back but answers 503 for a while
    flaky = dataclasses.replace(dead, webhook_url=webhook.url, retries=2)
    assert notify(store, flaky, NOW + timedelta(minutes=5), sleep=naps.append)["failed"] == 1
    assert webhook.received == []
    result = notify(store, flaky, NOW + timedelta(minutes=10), sleep=naps.append)  # 503, then 200
    assert result["sent"] == 1
    [(_, payload)] = webhook.received
    assert payload["postwatch"]["alerts"][0]["id"] == alert_id
    with store() as s:
        [d] = s.scalars(select(AlertDelivery)).all()
        assert d.sent_at is not None and d.attempts == 3 + 2 + 2 and d.last_error is None
        assert s.get(Alert, alert_id).notified_at is not None


def test_one_failing_channel_does_not_hold_back_the_other(store, smtp_sink):
    cfg = AlertsConfig(smtp_host=smtp_sink.address, mail_to=("a@ops.example",),
                       webhook_url=f"http://127.0.0.1:{_free_port()}/", retries=1)
    alert_id = _raise(store)
    result = notify(store, cfg, NOW)
    assert (result["sent"], result["failed"]) == (1, 1)
    assert len(smtp_sink.envelopes) == 1
    with store() as s:
        assert s.get(Alert, alert_id).notified_at is None  # the webhook still owes it
        pending = s.scalars(select(AlertDelivery).where(AlertDelivery.sent_at.is_(None))).all()
        assert [d.channel for d in pending] == ["webhook"]


def test_no_channel_configured_sends_nothing(store):
    _raise(store)
    assert notify(store, AlertsConfig(), NOW) == {"queued": 0, "sent": 0, "failed": 0, "errors": []}


def test_alert_mail_goes_through_the_senders_transport_with_its_login_over_ipv6(store, tmp_path):
    """alerts.smtp_host as [::1]:PORT, STARTTLS (opportunistic: the sink's certificate is its
    own), AUTH with alerts.smtp_username / smtp_password, one message for both recipients."""
    from tests.sender.sink import Sink

    relay = Sink(tmp_path, host="::1", logins={"alerts": "s3cret"})
    try:
        cfg = AlertsConfig(smtp_host=relay.address, smtp_username="alerts", smtp_password="s3cret",
                           mail_from="postwatch@ops.example", mail_to=("a@ops.example", "b@ops.example"), retries=1)
        _raise(store)
        assert notify(store, cfg, NOW, sleep=lambda s: None)["sent"] == 1
        [got] = relay.received
        assert got.tls and got.rcpt_tos == ["a@ops.example", "b@ops.example"] and relay.logged_in == ["alerts"]
        assert email.message_from_bytes(got.data)["Auto-Submitted"] == "auto-generated"
    finally:
        relay.stop()


def test_alert_mail_refusals_name_the_alerts_settings(store, smtp_sink):
    _raise(store)
    required = AlertsConfig(smtp_host=smtp_sink.address, smtp_starttls="required", mail_to=("a@ops.example",),
                            retries=1)
    result = notify(store, required, NOW, sleep=lambda s: None)
    assert result["failed"] == 1 and "alerts.smtp_starttls is required" in result["errors"][0]
    assert smtp_sink.envelopes == []
    bad_port = dataclasses.replace(required, smtp_host="127.0.0.1:smtp", smtp_starttls="off")
    result = notify(store, bad_port, NOW, sleep=lambda s: None)
    assert result["failed"] == 1 and "(alerts.smtp_host)" in result["errors"][0]
    with store() as s:
        [d] = s.scalars(select(AlertDelivery)).all()
        assert d.sent_at is None and d.attempts == 2  # still waiting for the next run
