"""The whole loop, end to end, with every server real and on loopback:

send a campaign to three recipients through an SMTP sink (STARTTLS) -> the destination
returns a DSN for one of them to the message's signed return path, delivered over SMTP to
postwatch's collector -> the spool worker stores it and the VERP token ties the bounce to its
send-log row (recipient and campaign) -> the suppression engine suppresses the address ->
the next campaign skips it and logs it `suppressed` -> the feed, over HTTP, shows it with a
cursor. Then a recipient clicks the one-click unsubscribe link of the mail it received, as
Gmail posts it, and the next campaign skips that one too.
"""
from __future__ import annotations

import email
import email.policy
import re
import smtplib
from email.utils import format_datetime

import pytest
from sqlalchemy import select

from analysis.config import SuppressionConfig
from analysis.suppression import Rules, run as suppression_pass
from ingest.config import IngestConfig
from ingest.pipeline import Pipeline
from ingest.spool_worker import SpoolWorker
from ingest.verp import decode
from sender.campaign import Settings, send_campaign
from sender.config import SenderConfig
from store.clock import utcnow
from store.models import BounceEvent
from store.volume import SendLog
from tests.ingest.collectors.test_smtp import FAST, Running
from tests.sender.http_client import serve
from tests.sender.sink import Sink
from tests.sender.test_http import READ, SALT, app_for

VERP_SECRET = "verp-secret-for-the-round-trip"
UNSUBSCRIBE_SECRET = "s3cret-unsubscribe-key"  # what app_for configures as web.secret
ALICE, BOB, CAROL = "alice@example.net", "bob@example.org", "carol@example.com"


@pytest.fixture
def campaign_files(tmp_path):
    tpl = tmp_path / "template"
    tpl.mkdir()
    (tpl / "subject.txt").write_text("Spring news for {{ name }}\n")
    (tpl / "body.txt").write_text("Hello {{ name }},\n\nour spring news.\n\nUnsubscribe: {{ unsubscribe_url }}\n")
    (tpl / "body.html").write_text("<p>Hello {{ name }},</p><p><a href=\"https://shop.example/spring\">Shop</a></p>"
                                   "<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>\n")
    recipients = tmp_path / "recipients.csv"
    recipients.write_text(f"email,name\n{ALICE},Alice\n{BOB},Bob\n{CAROL},Carol\n")
    return tpl, recipients


@pytest.fixture
def servers(tmp_path, store):
    """The destination (an SMTP sink with STARTTLS), postwatch's SMTP collector, its web server."""
    sink = Sink(tmp_path / "sink")
    collector = Running(tmp_path / "collector", FAST)
    with serve(app_for(store)) as web:
        yield sink, collector, web
    collector.stop()
    sink.stop()


def remote_dsn(recipient: str, return_path: str, original: bytes) -> bytes:
    """What the destination's Postfix sends back: a DSN to the return path of the message."""
    headers = original.split(b"\r\n\r\n", 1)[0].decode()
    return f"""From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
To: {return_path}
Subject: Undelivered Mail Returned to Sender
Date: {format_datetime(utcnow())}
Auto-Submitted: auto-replied
Message-Id: <dsn.1@mx.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.org. Your message could not be delivered.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; {recipient}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mailstore.example.org
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown in virtual mailbox table

--B1
Content-Type: text/rfc822-headers

{headers}
--B1--
""".replace("\n", "\r\n").encode()


def settings(sink: Sink, web_base: str, campaign: str) -> Settings:
    sender = SenderConfig(smarthost=sink.address, starttls="required", from_address="news@news.example",
                          return_path_domain="bounces.news.example", helo="out.news.example")
    return Settings(campaign=campaign, sender=sender, from_address=sender.from_address, base_url=web_base,
                    verp_secret=VERP_SECRET, unsubscribe_secret=UNSUBSCRIBE_SECRET, salt=SALT)


def results(store, campaign: str) -> dict[str, str]:
    with store() as s:
        return {r.recipient: r.result for r in s.scalars(select(SendLog).where(SendLog.campaign == campaign))}


def test_send_bounce_suppress_skip_and_the_feed_shows_it(store, servers, campaign_files):
    sink, collector, web = servers
    template, recipients = campaign_files
    pipeline = Pipeline(store, IngestConfig(verp_secret=VERP_SECRET))

    # 1. send to three recipients, over STARTTLS
    first = send_campaign(store, template, recipients, settings(sink, web.base, "spring"), pipeline=pipeline)
    assert first.counts["sent"] == 3 and first.errors == [] and first.aborted is None
    assert results(store, "spring") == {ALICE: "sent", BOB: "sent", CAROL: "sent"}
    by_rcpt = {m.rcpt_tos[0]: m for m in sink.received}
    assert set(by_rcpt) == {ALICE, BOB, CAROL} and all(m.tls for m in sink.received)

    # 2. the destination returns a DSN for Bob to the message's signed return path, over SMTP
    bounced = by_rcpt[BOB]
    assert re.fullmatch(r"bounces\+t-[a-z2-7]+@bounces\.news\.example", bounced.mail_from)
    with collector.client() as smtp:
        smtp.sendmail("<>", [bounced.mail_from], remote_dsn(BOB, bounced.mail_from, bounced.data))
    assert SpoolWorker(collector.spool, pipeline).drain() == 1

    # 3. the event is tied to Bob's send-log row -- recipient and campaign -- by the VERP token
    with store() as s:
        event = s.scalars(select(BounceEvent)).one()
        row = s.get(SendLog, event.send_id)
    assert event.verp_token and decode(bounced.mail_from, VERP_SECRET).send_id == event.send_id
    assert (event.recipient, event.reason, event.status) == (BOB, "userunknown", "5.1.1")
    assert (row.recipient, row.campaign, row.result) == (BOB, "spring", "sent")

    # 4. the suppression engine suppresses him
    assert suppression_pass(store, Rules.from_config(SuppressionConfig()), utcnow()).suppressed == 1

    # 5. the next campaign skips him and logs it
    before = len(sink.received)
    second = send_campaign(store, template, recipients, settings(sink, web.base, "summer"), pipeline=pipeline)
    assert (second.counts["sent"], second.counts["suppressed"]) == (2, 1)
    assert results(store, "summer") == {ALICE: "sent", BOB: "suppressed", CAROL: "sent"}
    assert sorted(m.rcpt_tos[0] for m in sink.received[before:]) == [ALICE, CAROL]

    # 6. the feed, over HTTP, shows it with a cursor
    doc = web.get("/api/v1/suppressions?since=0", token=READ).json
    assert [(c["op"], c["address"], c["scope"], c["reason"]) for c in doc["changes"]] == [
        ("add", BOB, "global", "userunknown")]
    cursor = doc["changes"][0]["cursor"]
    assert isinstance(cursor, int) and doc["next"] == cursor
    assert web.get(f"/api/v1/suppressions?since={cursor}", token=READ).json == {"changes": [], "next": cursor}

    # 7. Carol clicks one-click unsubscribe in the mail she got, as Gmail posts it
    message = email.message_from_bytes(by_rcpt[CAROL].data, policy=email.policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.search(r"<(https?://[^>]+)>", message["List-Unsubscribe"]).group(1)
    assert url.startswith(web.base + "/unsubscribe/")
    clicked = web.call("POST", url[len(web.base):], data=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert clicked.status == 200
    doc = web.get(f"/api/v1/suppressions?since={cursor}", token=READ).json
    assert [(c["op"], c["address"], c["reason"]) for c in doc["changes"]] == [("add", CAROL, "unsubscribe")]
    assert doc["next"] > cursor

    # 8. and the campaign after that mails only Alice
    before = len(sink.received)
    third = send_campaign(store, template, recipients, settings(sink, web.base, "autumn"), pipeline=pipeline)
    assert (third.counts["sent"], third.counts["suppressed"]) == (1, 2)
    assert [m.rcpt_tos[0] for m in sink.received[before:]] == [ALICE]
