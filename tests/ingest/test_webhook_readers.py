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
