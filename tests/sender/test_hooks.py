"""The ESP webhooks over real HTTP on the web server: each provider's documented payloads
with good and bad signatures, replays, retries, and what is stored (events with their
reason, complaints, volume)."""
from __future__ import annotations

import dataclasses
import http.server
import json
import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from postwatch.config import load
from store import models as m
from store.volume import VolumeImport
from tests.sender import hook_signers as sign
from tests.sender.http_client import serve

T = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
MAILGUN_SECRET = "key-mailgun-signing-0123456789"
POSTMARK_USER, POSTMARK_PASSWORD, POSTMARK_SECRET = "postmark", "hook-password-0123", "hook-secret-0123456789"
RSA_KEY, CERT_PEM = sign.certificate()
SG_KEY, SG_PUBLIC = sign.sendgrid_keys()


class Loopback:
    """The AWS side of a subscription confirmation: a loopback server that records the GETs
    the fetcher sends it in place of the SNS host, and serves the signing certificate."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.paths.append(self.path)
                body = CERT_PEM if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.fetched: list[str] = []

    def fetch(self, url: str) -> bytes:
        import urllib.request
        from urllib.parse import urlsplit

        self.fetched.append(url)
        parts = urlsplit(url)
        local = f"http://127.0.0.1:{self.server.server_port}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        with urllib.request.urlopen(local, timeout=10) as resp:
            return resp.read()


@pytest.fixture
def aws():
    side = Loopback()
    yield side
    side.server.shutdown()


@pytest.fixture
def hooks(store, database, aws):
    from dashboard.server import create_server

    env = {"POSTWATCH_WEB__SECRET": "web-secret-0123456789",
           "POSTWATCH_WEBHOOKS__PROVIDERS": "ses,sendgrid,mailgun,postmark",
           "POSTWATCH_WEBHOOKS__SES_TOPIC_ARNS": sign.TOPIC,
           "POSTWATCH_WEBHOOKS__SENDGRID_PUBLIC_KEY": SG_PUBLIC,
           "POSTWATCH_WEBHOOKS__MAILGUN_SIGNING_SECRET": MAILGUN_SECRET,
           "POSTWATCH_WEBHOOKS__POSTMARK_USERNAME": POSTMARK_USER,
           "POSTWATCH_WEBHOOKS__POSTMARK_PASSWORD": POSTMARK_PASSWORD,
           "POSTWATCH_WEBHOOKS__POSTMARK_SECRET": POSTMARK_SECRET}
    settings = dataclasses.replace(load(environ=env), database=database)
    app = create_server(settings, sessions=store, clock=lambda: T, pages=False, webhook_fetch=aws.fetch)
    with serve(app) as client:
        yield client


def post(client, provider: str, body: bytes | dict | list, headers: dict[str, str] | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.call("POST", f"/hooks/{provider}", data=raw,
                       headers={"Content-Type": "application/json", **(headers or {})})


def counts(store) -> dict[str, int]:
    with store() as s:
        return {name: s.scalar(select(func.count()).select_from(model)) for name, model in (
            ("messages", m.InboundMessage), ("bounces", m.BounceEvent), ("complaints", m.ComplaintEvent),
            ("quarantined", m.Quarantine))}


def bounces(store) -> list[tuple]:
    with store() as s:
        return s.execute(select(m.BounceEvent.recipient, m.BounceEvent.reason, m.BounceEvent.category,
                                m.BounceEvent.hard, m.BounceEvent.status, m.BounceEvent.reply_code,
                                m.BounceEvent.from_domain, m.BounceEvent.campaign)
                         .order_by(m.BounceEvent.id)).all()


def volume(store) -> list[tuple]:
    with store() as s:
        return s.execute(select(VolumeImport.day, VolumeImport.sending_domain, VolumeImport.provider,
                                VolumeImport.campaign, VolumeImport.origin, VolumeImport.sent)
                         .order_by(VolumeImport.id)).all()


# -- Amazon SES through SNS ---------------------------------------------------------------------

SES_MAIL = {"timestamp": "2026-06-01T11:59:00.000Z", "source": "news@mail.example.com",
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/mail.example.com",
            "sourceIp": "198.51.100.7", "messageId": "0100018fd3a5b6c7-example-000000",
            "destination": ["gone@example.net", "full@example.org"],
            "commonHeaders": {"from": ["Example News <news@mail.example.com>"], "to": ["gone@example.net"],
                              "messageId": "<spring-1@mail.example.com>", "subject": "Spring sale"},
            "tags": {"campaign": ["spring-sale"], "ses:configuration-set": ["feedback"]}}

SES_BOUNCE = {"notificationType": "Bounce", "mail": SES_MAIL, "bounce": {
    "bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2026-06-01T12:00:00.000Z",
    "feedbackId": "0100018fd3a5-feedback", "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
    "remoteMtaIp": "203.0.113.25",
    "bouncedRecipients": [{"emailAddress": "gone@example.net", "action": "failed", "status": "5.1.1",
                           "diagnosticCode": "smtp; 550 5.1.1 <gone@example.net>: Recipient address rejected: "
                                             "User unknown in virtual mailbox table"}]}}

SES_FULL = {"eventType": "Bounce", "mail": SES_MAIL, "bounce": {
    "bounceType": "Transient", "bounceSubType": "MailboxFull", "timestamp": "2026-06-01T12:01:00.000Z",
    "feedbackId": "0100018fd3a5-feedback-2",
    "bouncedRecipients": [{"emailAddress": "full@example.org"}]}}

SES_COMPLAINT = {"notificationType": "Complaint", "mail": SES_MAIL, "complaint": {
    "complainedRecipients": [{"emailAddress": "angry@example.com"}], "timestamp": "2026-06-01T12:02:00.000Z",
    "feedbackId": "0100018fd3a5-complaint", "complaintFeedbackType": "abuse",
    "userAgent": "ExampleCorp Feedback Loop (V0.01)", "arrivalDate": "2026-06-01T12:01:30.000Z"}}

SES_SEND = {"eventType": "Send", "mail": SES_MAIL, "send": {}}
SES_DELIVERY = {"eventType": "Delivery", "mail": SES_MAIL, "delivery": {
    "timestamp": "2026-06-01T12:00:05.000Z", "processingTimeMillis": 546, "recipients": ["ok@gmail.com"],
    "smtpResponse": "250 ok", "reportingMTA": "a8-70.smtp-out.amazonses.com"}}


def test_ses_notifications_signed_by_sns_are_stored_as_events_with_their_reasons(hooks, store):
    answer = post(hooks, "ses", sign.sns_message(RSA_KEY, SES_BOUNCE, version="1"))
    assert answer.status == 200, answer.text
    assert answer.json["events"] == 1 and answer.json["duplicate"] is False
    full = post(hooks, "ses", sign.sns_message(RSA_KEY, SES_FULL, version="2", message_id="m-2"))
    assert full.status == 200, full.text
    assert bounces(store) == [
        ("gone@example.net", "userunknown", "hygiene", True, "5.1.1", "550", "mail.example.com", "spring-sale"),
        # the vocabulary's Transient/MailboxFull, soft; its status made up as for any bounce without one
        ("full@example.org", "mailboxfull", "transient", False, "4.0.922", None, "mail.example.com", "spring-sale")]
    complaint = post(hooks, "ses", sign.sns_message(RSA_KEY, SES_COMPLAINT, message_id="m-3"))
    assert complaint.status == 200 and complaint.json["events"] == 1
    with store() as s:
        row = s.execute(select(m.ComplaintEvent.recipient, m.ComplaintEvent.feedback_type,
                               m.ComplaintEvent.user_agent, m.ComplaintEvent.from_domain)).one()
    assert tuple(row) == ("angry@example.com", "abuse", "ExampleCorp Feedback Loop (V0.01)", "mail.example.com")


def test_ses_sends_are_volume_once_per_recipient_and_published_deliveries_are_not_counted_again(hooks, store):
    assert post(hooks, "ses", sign.sns_message(RSA_KEY, SES_SEND, message_id="m-send")).json["sent"] == 2
    assert post(hooks, "ses", sign.sns_message(RSA_KEY, SES_DELIVERY, message_id="m-dlv")).json["sent"] == 0
    rows = volume(store)
    assert sorted(rows) == [
        (T.date(), "mail.example.com", "example.net", "spring-sale", "webhook:ses", 1),
        (T.date(), "mail.example.com", "example.org", "spring-sale", "webhook:ses", 1)]
    assert counts(store)["messages"] == 2


def test_a_retried_sns_notification_stores_one_message_and_its_events_once(hooks, store):
    message = sign.sns_message(RSA_KEY, SES_BOUNCE)
    first, again = post(hooks, "ses", message), post(hooks, "ses", message)
    assert first.status == again.status == 200
    assert again.json["duplicate"] is True and again.json["message"] == first.json["message"]
    assert counts(store) == {"messages": 1, "bounces": 1, "complaints": 0, "quarantined": 0}


def test_sns_signatures_that_do_not_hold_are_refused_and_nothing_is_stored(hooks, store, aws):
    tampered = sign.sns_message(RSA_KEY, SES_BOUNCE)
    tampered["Message"] = tampered["Message"].replace("gone@example.net", "other@example.net")
    assert post(hooks, "ses", tampered).status == 403
    other_key, _pem = sign.certificate()
    assert post(hooks, "ses", sign.sns_message(other_key, SES_BOUNCE)).status == 403
    unsigned = sign.sns_message(RSA_KEY, SES_BOUNCE)
    del unsigned["Signature"]
    assert post(hooks, "ses", unsigned).status == 401
    assert post(hooks, "ses", sign.sns_message(RSA_KEY, SES_BOUNCE, topic="arn:aws:sns:us-east-1:1:other")).status == 403
    assert post(hooks, "ses", b"not json").status == 400
    assert counts(store)["messages"] == 0


@pytest.mark.parametrize("url", [
    "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
    "https://evil.example/sns.us-east-1.amazonaws.com/cert.pem",
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123.pem",
    "https://s3.amazonaws.com/cert.pem"])
def test_a_signing_certificate_outside_the_sns_host_pattern_is_never_fetched(hooks, store, aws, url):
    answer = post(hooks, "ses", sign.sns_message(RSA_KEY, SES_BOUNCE, cert_url=url))
    assert answer.status == 403 and "SigningCertURL" in answer.json["error"]
    assert aws.fetched == [] and counts(store)["messages"] == 0


def test_the_signing_certificate_is_fetched_once_and_cached(hooks, aws):
    for n in range(3):
        assert post(hooks, "ses", sign.sns_message(RSA_KEY, SES_SEND, message_id=f"m-{n}")).status == 200
    assert aws.fetched == [sign.CERT_URL]


def test_a_subscription_to_a_configured_topic_is_confirmed_by_fetching_its_subscribe_url(hooks, store, aws):
    url = f"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={sign.TOPIC}&Token=2336412f37"
    message = sign.sns_message(RSA_KEY, "You have chosen to subscribe to the topic ...", kind="SubscriptionConfirmation",
                               version="2", SubscribeURL=url, Token="2336412f37")
    answer = post(hooks, "ses", message)
    assert answer.status == 200 and answer.json == {"confirmed": sign.TOPIC}
    assert aws.fetched == [sign.CERT_URL, url]
    assert aws.paths[-1].startswith("/?Action=ConfirmSubscription")
    # a SubscribeURL off the SNS hosts is not followed, however well signed
    bad = sign.sns_message(RSA_KEY, "...", kind="SubscriptionConfirmation", SubscribeURL="https://evil.example/x",
                           Token="t")
    assert post(hooks, "ses", bad).status == 403 and len(aws.fetched) == 2
    # nor one for a topic that is not configured
    other = sign.sns_message(RSA_KEY, "...", kind="SubscriptionConfirmation", SubscribeURL=url, Token="t",
                             topic="arn:aws:sns:us-east-1:123456789012:someone-else")
    assert post(hooks, "ses", other).status == 403 and len(aws.fetched) == 2
    assert counts(store)["messages"] == 0


def test_a_signed_sns_message_whose_ses_json_cannot_be_read_is_quarantined_with_the_reason(hooks, store):
    answer = post(hooks, "ses", sign.sns_message(RSA_KEY, "{not the SES json"))
    assert answer.status == 400 and answer.json["quarantined"] is True
    with store() as s:
        reason = s.scalar(select(m.Quarantine.reason))
    assert "SES" in reason and counts(store)["messages"] == 1


# -- SendGrid -----------------------------------------------------------------------------------

SENDGRID_EVENTS = [
    {"email": "gone@example.net", "timestamp": 1780315200, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
     "event": "bounce", "category": ["spring-sale"], "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
     "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "reason":
     "550 5.1.1 The email account that you tried to reach does not exist.", "status": "5.1.1", "type": "bounce",
     "bounce_classification": "Invalid Address"},
    {"email": "rep@example.org", "timestamp": 1780315201, "event": "bounce", "type": "blocked",
     "reason": "550 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.spamhaus.org",
     "status": "5.7.1", "sg_event_id": "e2"},
    {"email": "slow@example.org", "timestamp": 1780315202, "event": "deferred", "response":
     "421 4.7.0 Try again later, closing connection.", "attempt": "5", "sg_event_id": "e3"},
    {"email": "old@example.com", "timestamp": 1780315203, "event": "dropped", "reason": "Bounced Address",
     "status": "5.0.0", "sg_event_id": "e4"},
    {"email": "angry@example.com", "timestamp": 1780315204, "event": "spamreport", "sg_event_id": "e5"},
    {"email": "a@gmail.com", "timestamp": 1780315205, "event": "processed", "category": "spring-sale",
     "sg_event_id": "e6"},
    {"email": "b@gmail.com", "timestamp": 1780315206, "event": "processed", "campaign": "welcome",
     "sg_event_id": "e7"},
    {"email": "a@gmail.com", "timestamp": 1780315207, "event": "delivered", "ip": "192.0.2.10",
     "response": "250 OK", "sg_event_id": "e8"},
    {"email": "a@gmail.com", "timestamp": 1780315208, "event": "open", "sg_event_id": "e9"}]


def test_sendgrid_signed_events_become_bounces_complaints_and_volume(hooks, store):
    raw = json.dumps(SENDGRID_EVENTS).encode()
    answer = post(hooks, "sendgrid", raw, sign.sendgrid_headers(SG_KEY, raw))
    assert answer.status == 200, answer.text
    assert answer.json == {"message": answer.json["message"], "duplicate": False, "events": 5, "sent": 2,
                           "ignored": 2}
    got = {r[0]: r[1:4] for r in bounces(store)}
    assert got == {"gone@example.net": ("userunknown", "hygiene", True),
                   "rep@example.org": ("blocked", "reputation", False),
                   "slow@example.org": (got["slow@example.org"][0], got["slow@example.org"][1], False),
                   "old@example.com": ("suppressed", "hygiene", False)}  # hard is for addresses found bad
    # a deferral: what the words say, by the same classifier as mail, and never hard
    from ingest.bounce.classify import classify
    said = classify({"action": "delayed", "diagnostic": SENDGRID_EVENTS[2]["response"], "status": "4.7.0",
                     "reply_code": "421"})
    assert got["slow@example.org"][:2] == (said["reason"], said["category"])
    assert counts(store)["complaints"] == 1
    assert sorted(volume(store)) == [(date_of(1780315205), "", "google", "spring-sale", "webhook:sendgrid", 1),
                                     (date_of(1780315206), "", "google", "welcome", "webhook:sendgrid", 1)]


def date_of(ts: int):
    return datetime.fromtimestamp(ts, timezone.utc).date()


def test_sendgrid_refuses_a_bad_or_missing_signature(hooks, store):
    raw = json.dumps(SENDGRID_EVENTS).encode()
    headers = sign.sendgrid_headers(SG_KEY, raw)
    assert post(hooks, "sendgrid", raw.replace(b"gone@", b"else@"), headers).status == 403
    other, _ = sign.sendgrid_keys()
    assert post(hooks, "sendgrid", raw, sign.sendgrid_headers(other, raw)).status == 403
    assert post(hooks, "sendgrid", raw, {**headers, "X-Twilio-Email-Event-Webhook-Timestamp": "1780315299"}).status == 403
    assert post(hooks, "sendgrid", raw).status == 401
    assert counts(store)["messages"] == 0


def test_a_signed_sendgrid_body_that_is_not_an_event_array_is_quarantined_and_answered_400(hooks, store):
    raw = b'{"hello": "world"}'
    answer = post(hooks, "sendgrid", raw, sign.sendgrid_headers(SG_KEY, raw))
    assert answer.status == 400 and answer.json["quarantined"] is True
    assert counts(store)["quarantined"] == 1


# -- Mailgun ------------------------------------------------------------------------------------

def mailgun_failed(severity: str = "permanent", **status) -> dict:
    return {"event": "failed", "id": "G9Bn5sl1TC6nu79C8C0bwg", "timestamp": T.timestamp(), "log-level": "error",
            "severity": severity, "reason": "bounce" if severity == "permanent" else "generic",
            "recipient": "gone@example.net", "recipient-domain": "example.net", "tags": ["spring-sale"],
            "user-variables": {}, "envelope": {"sender": "bounce@mg.example.com", "sending-ip": "209.61.154.250",
                                               "transport": "smtp", "targets": "gone@example.net"},
            "message": {"headers": {"to": "gone@example.net", "message-id": "20260601120000.1.ABC@mg.example.com",
                                    "from": "News <news@mg.example.com>", "subject": "Spring sale"},
                        "attachments": [], "size": 111},
            "delivery-status": {"attempt-no": 1, "code": 550, "message": "5.1.1 The email account that you tried "
                                "to reach does not exist.", "description": "", "mx-host": "mx.example.net",
                                **status}}


def test_mailgun_failed_complained_and_accepted_events_are_stored(hooks, store):
    body = sign.mailgun_body(MAILGUN_SECRET, mailgun_failed(), timestamp=int(T.timestamp()), token="tok-1" * 10)
    answer = post(hooks, "mailgun", body)
    assert answer.status == 200, answer.text
    temporary = mailgun_failed("temporary", code=452, message="4.2.2 The email account that you tried to reach is "
                               "over quota.")
    temporary["recipient"] = "full@example.org"
    body = sign.mailgun_body(MAILGUN_SECRET, temporary, timestamp=int(T.timestamp()), token="tok-2" * 10)
    assert post(hooks, "mailgun", body).status == 200
    assert bounces(store) == [
        ("gone@example.net", "userunknown", "hygiene", True, "5.1.1", "550", "mg.example.com", "spring-sale"),
        ("full@example.org", "mailboxfull", "transient", False, "4.2.2", "452", "mg.example.com", "spring-sale")]
    complained = {"event": "complained", "timestamp": T.timestamp(), "recipient": "angry@example.com",
                  "message": {"headers": {"from": "news@mg.example.com"}}}
    assert post(hooks, "mailgun", sign.mailgun_body(MAILGUN_SECRET, complained, timestamp=int(T.timestamp()),
                                                    token="tok-3" * 10)).json["events"] == 1
    accepted = {"event": "accepted", "timestamp": T.timestamp(), "recipient": "a@yahoo.com",
                "user-variables": {"campaign": "welcome"},
                "envelope": {"sender": "bounce@mg.example.com", "sending-ip": "209.61.154.250"},
                "message": {"headers": {"from": "news@mg.example.com"}}}
    assert post(hooks, "mailgun", sign.mailgun_body(MAILGUN_SECRET, accepted, timestamp=int(T.timestamp()),
                                                    token="tok-4" * 10)).json["sent"] == 1
    assert counts(store)["complaints"] == 1
    assert volume(store) == [(T.date(), "mg.example.com", "yahoo", "welcome", "webhook:mailgun", 1)]


def test_mailgun_refuses_a_replayed_token_a_stale_timestamp_and_a_bad_signature(hooks, store):
    event = mailgun_failed()
    first = sign.mailgun_body(MAILGUN_SECRET, event, timestamp=int(T.timestamp()), token="replayed-token-0123456789")
    assert post(hooks, "mailgun", first).status == 200
    # the same signature on another body: a replay
    event["recipient"] = "someone-else@example.net"
    replay = sign.mailgun_body(MAILGUN_SECRET, event, timestamp=int(T.timestamp()), token="replayed-token-0123456789")
    answer = post(hooks, "mailgun", replay)
    assert answer.status == 403 and "replay" in answer.json["error"]
    # the very same bytes again are Mailgun's retry: stored once, answered 200
    again = post(hooks, "mailgun", first)
    assert again.status == 200 and again.json["duplicate"] is True
    stale = sign.mailgun_body(MAILGUN_SECRET, event, timestamp=int(T.timestamp()) - 11 * 60, token="fresh-token-1")
    assert post(hooks, "mailgun", stale).status == 403
    forged = sign.mailgun_body("not-the-key", event, timestamp=int(T.timestamp()), token="fresh-token-2")
    assert post(hooks, "mailgun", forged).status == 403
    assert post(hooks, "mailgun", {"event-data": event}).status == 401
    assert counts(store)["messages"] == 1 and counts(store)["bounces"] == 1


# -- Postmark -----------------------------------------------------------------------------------

POSTMARK_BOUNCE = {
    "RecordType": "Bounce", "MessageStream": "outbound", "ID": 4323372036854775807, "Type": "HardBounce",
    "TypeCode": 1, "Name": "Hard bounce", "Tag": "spring-sale", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "Metadata": {"a_key": "a_value"}, "ServerID": 23, "Description": "The server was unable to deliver your message "
    "(ex: unknown user, mailbox not found).", "Details": "smtp;550 5.1.1 The email account that you tried to reach "
    "does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces.",
    "Email": "gone@example.net", "From": "news@pm.example.com", "BouncedAt": "2026-06-01T12:00:00Z",
    "DumpAvailable": True, "Inactive": True, "CanActivate": True, "Subject": "Spring sale", "Content": ""}


def test_postmark_bounces_by_type_complaints_and_deliveries(hooks, store):
    auth = sign.basic(POSTMARK_USER, POSTMARK_PASSWORD)
    assert post(hooks, "postmark", POSTMARK_BOUNCE, auth).status == 200
    spam = {**POSTMARK_BOUNCE, "Type": "SpamNotification", "TypeCode": 512, "Email": "filter@example.org",
            "Details": "", "Description": "The message was delivered, but was either blocked by the user, or "
            "classified as spam, bounce, or other spam notification."}
    assert post(hooks, "postmark", spam, {"X-Postmark-Secret": POSTMARK_SECRET}).status == 200
    soft = {**POSTMARK_BOUNCE, "Type": "SoftBounce", "TypeCode": 4096, "Email": "soft@example.org",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist."}
    assert post(hooks, "postmark", soft, auth).status == 200
    got = {r[0]: r[1:4] for r in bounces(store)}
    assert got == {"gone@example.net": ("userunknown", "hygiene", True),
                   "filter@example.org": ("spamdetected", "content", False),
                   # Postmark says it will try again: the words keep their reason, never hard
                   "soft@example.org": ("userunknown", "hygiene", False)}
    complaint = {**POSTMARK_BOUNCE, "RecordType": "SpamComplaint", "Type": "SpamComplaint", "TypeCode": 512,
                 "Email": "angry@example.com"}
    assert post(hooks, "postmark", complaint, auth).json["events"] == 1
    delivery = {"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound", "MessageID":
                "00000000-0000-0000-0000-000000000000", "Recipient": "a@outlook.com", "Tag": "welcome",
                "DeliveredAt": "2026-06-01T12:00:00Z", "Details": "Test delivery webhook details",
                "Metadata": {"campaign": "spring-sale"}}
    assert post(hooks, "postmark", delivery, auth).json["sent"] == 1
    assert counts(store)["complaints"] == 1
    assert [r[2:] for r in volume(store)] == [(volume(store)[0][2], "spring-sale", "webhook:postmark", 1)]


def test_postmark_refuses_missing_or_wrong_credentials(hooks, store):
    assert post(hooks, "postmark", POSTMARK_BOUNCE).status == 401
    assert post(hooks, "postmark", POSTMARK_BOUNCE, sign.basic(POSTMARK_USER, "wrong")).status == 403
    assert post(hooks, "postmark", POSTMARK_BOUNCE, {"X-Postmark-Secret": "wrong-secret"}).status == 403
    assert counts(store)["messages"] == 0


def test_a_provider_not_enabled_is_not_found(store, database):
    from dashboard.server import create_server

    settings = dataclasses.replace(load(environ={"POSTWATCH_WEBHOOKS__PROVIDERS": "postmark",
                                                 "POSTWATCH_WEBHOOKS__POSTMARK_SECRET": POSTMARK_SECRET}),
                                   database=database)
    with serve(create_server(settings, sessions=store, clock=lambda: T, pages=False)) as client:
        assert post(client, "sendgrid", []).status == 404
        assert post(client, "nobody", []).status == 404
        assert post(client, "postmark", POSTMARK_BOUNCE, {"X-Postmark-Secret": POSTMARK_SECRET}).status == 200


def test_webhook_volume_and_bounces_reach_the_rollups_as_the_send_log_does(hooks, store):
    from analysis.rollups import metrics_frame, update

    assert post(hooks, "ses", sign.sns_message(RSA_KEY, SES_SEND, message_id="m-send")).json["sent"] == 2
    assert post(hooks, "ses", sign.sns_message(RSA_KEY, SES_BOUNCE, message_id="m-bounce")).status == 200
    with store.begin() as s:
        update(s, now=T)
    with store() as s:
        frame = metrics_frame(s, T.date(), T.date(), "all")
    assert frame.loc[T.date(), "sent"] == 2
    row = frame.loc[T.date()]
    assert (row["sent"], row["bounced"], row["hard"], row["reason.userunknown"]) == (2, 1, 1, 1)


def test_sendgrid_signature_age_is_checked_only_when_a_limit_is_set():
    from datetime import timedelta

    from sender.hook_auth import check_sendgrid, sendgrid_key

    raw = json.dumps(SENDGRID_EVENTS).encode()
    key, public = sign.sendgrid_keys()
    headers = sign.sendgrid_headers(key, raw, timestamp="1780315200")
    signed = datetime.fromtimestamp(1780315200, timezone.utc)
    verifier = sendgrid_key(public)
    limit = timedelta(minutes=10)
    assert check_sendgrid(verifier, headers, raw, now=signed + timedelta(minutes=9), max_age=limit) is None
    late = check_sendgrid(verifier, headers, raw, now=signed + timedelta(minutes=11), max_age=limit)
    assert late is not None and late.status == 403 and "sendgrid_max_age_minutes" in late.reason
    early = check_sendgrid(verifier, headers, raw, now=signed - timedelta(minutes=11), max_age=limit)
    assert early is not None and early.status == 403
    assert check_sendgrid(verifier, headers, raw, now=signed + timedelta(days=3), max_age=timedelta(0)) is None
