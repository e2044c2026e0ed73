"""The webhook readers on their own: the vocabulary file, and a stored webhook body read
again by `reprocess` with its provider's reader (never as mail)."""
from __future__ import annotations

import json
import tomllib

from sqlalchemy import select

from ingest.bounce.rules import REASONS
from ingest.envelope import Envelope
from ingest.webhooks.facts import VOCABULARY, read_options, unreadable
from ingest.webhooks.readers import READERS
from store import models as m

BOUNCE = {"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1, "Email": "gone@example.net",
          "From": "news@pm.example.com", "BouncedAt": "2026-06-01T12:00:00Z",
          "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist."}


def test_every_vocabulary_term_names_a_provider_with_a_reader_and_a_known_reason():
    data = tomllib.loads(VOCABULARY.read_text("utf-8"))
    for term, reason in data["mta_category"].items():
        provider, _, word = term.partition(":")
        assert provider in READERS and word and term == term.lower(), term
        assert reason in REASONS, term
    assert set(data["temporary"]) == set(READERS)
    rules = read_options().rules
    assert rules.mta_category["ses:permanent/noemail"] == "userunknown"


def test_a_quarantined_webhook_body_is_read_again_by_its_provider_reader(pipeline, store):
    raw = json.dumps(BOUNCE).encode()
    out = pipeline.ingest_read(raw, Envelope(source="webhook:postmark", origin="postmark 127.0.0.1"),
                               unreadable("a reader of an earlier version could not read it"))
    assert out.status == "quarantined"
    again = list(pipeline.reprocess_quarantined())
    assert [o.status for o in again] == ["parsed"]
    with store() as s:
        rows = s.execute(select(m.BounceEvent.recipient, m.BounceEvent.reason, m.BounceEvent.from_domain)).all()
        kind = s.scalar(select(m.InboundMessage.kind))
    assert [tuple(r) for r in rows] == [("gone@example.net", "userunknown", "pm.example.com")] and kind == "webhook"


def test_a_body_no_reader_can_read_stays_in_quarantine_with_its_reason(pipeline, store):
    out = pipeline.ingest_read(b'{"hello": "world"}', Envelope(source="webhook:sendgrid"),
                               READERS["sendgrid"]({}, b'{"hello": "world"}', read_options()))
    assert out.status == "quarantined"
    assert [o.status for o in pipeline.reprocess_quarantined()] == ["quarantined"]
    with store() as s:
        assert "SendGrid posts a JSON array" in s.scalar(select(m.Quarantine.reason))


def test_remembered_verdicts_are_the_classifiers_and_follow_the_recipients_domain():
    """The readers remember the classifier's verdict per event shape: each equals what the
    classifier says of that very event, and the recipient's domain (which names the mailbox
    provider) is part of the shape while its local part is not."""
    from ingest.bounce.classify import classify
    from ingest.webhooks.facts import bounce

    options = read_options("")
    said = "550 5.7.1 Our system has detected that this message is likely unsolicited mail."
    events = [bounce(options, "sendgrid", recipient=f"{who}@{domain}", diagnostic=said, term=None, temporary=False)
              for domain in ("gmail.com", "yahoo.com") for who in ("ann", "bob")]
    for ev in events:
        fresh = dict(ev)
        for key in ("reason", "hard_bounce", "category", "rule", "provider", "conflict"):
            fresh.pop(key)
        assert {k: ev[k] for k in classify(dict(fresh), rules=options.rules)} == classify(dict(fresh),
                                                                                         rules=options.rules)
    assert len(options.verdicts) == 2  # one per domain: the local part is not read
    assert events[0]["provider"] != events[2]["provider"]


def test_a_quarantined_webhook_body_is_read_again_with_the_web_servers_options(store):
    """The reprocess reads a kept body as the web server reads it: with [webhooks] campaign_key
    and volume_from (here a custom argument `cmp`, and deliveries as volume), not the defaults."""
    from ingest.pipeline import Pipeline
    from store.volume import VolumeImport

    events = [{"email": "a@example.org", "timestamp": 1780315200, "event": "delivered", "ip": "192.0.2.9",
               "cmp": "winter"},
              {"email": "b@example.org", "timestamp": 1780315200, "event": "processed", "cmp": "winter"}]
    raw = json.dumps(events).encode()
    pipeline = Pipeline(store, webhooks=read_options("", "cmp", "deliveries"))
    out = pipeline.ingest_read(raw, Envelope(source="webhook:sendgrid"), unreadable("read by an older version"))
    assert out.status == "quarantined"
    assert [o.status for o in pipeline.reprocess_quarantined()] == ["parsed"]
    with store() as s:
        rows = [(v.campaign, v.sending_ip, v.sent) for v in s.scalars(select(VolumeImport))]
    assert rows == [("winter", "192.0.2.9", 1)]  # the delivery counted, under the custom argument's campaign
