import pytest

from ingest import verp
from ingest.parse import parse_bytes
from ingest.config import IngestConfig
from ingest.envelope import Envelope
from tests.ingest.messages import postfix_dsn

KEY = "test-key-1"


@pytest.mark.parametrize("send_id", [0, 1, 255, 256, 123456789, 2 ** 63, verp.MAX_ID])
def test_token_round_trip_and_length(send_id):
    address = verp.encode_token(send_id, KEY, "send.example.com")
    local = address.split("@")[0]
    assert len(address.split("+t-")[1].split("@")[0]) <= 40 and len(local) < 64
    got = verp.decode(address, KEY)
    assert (got.kind, got.send_id, got.valid) == ("token", send_id, True)
    assert verp.decode(address.upper(), KEY).send_id == send_id  # MTAs may change the case


def test_tampered_or_foreign_tokens_are_refused():
    address = verp.encode_token(42, KEY, "send.example.com")
    token = address.split("+t-")[1].split("@")[0]
    flipped = token[:3] + ("a" if token[3] != "a" else "b") + token[4:]
    assert verp.decode(f"bounces+t-{flipped}@send.example.com", KEY).valid is False
    assert verp.decode(address, "another-key").valid is False
    assert verp.decode(address, None).valid is False
    assert verp.decode("bounces+t-!!!@send.example.com", KEY).valid is False


def test_classic_round_trip():
    address = verp.encode_classic("Jane.Doe+tag@Example.ORG", "send.example.com")
    assert address == "bounces+Jane.Doe+tag=Example.ORG@send.example.com"
    got = verp.decode(address)
    assert (got.kind, got.recipient) == ("classic", "jane.doe+tag@example.org")


@pytest.mark.parametrize("address", ["bounces@send.example.com", "news+x@send.example.com",
                                     "bounces+nodomain@send.example.com", "not an address"])
def test_other_addresses_are_not_ours(address):
    assert verp.decode(address, KEY) is None


def test_a_bounce_is_attributed_by_its_envelope_token():
    rcpt = verp.encode_token(777, KEY, "send.example.com")
    result = parse_bytes(postfix_dsn(), IngestConfig(verp_secret=KEY),
                         Envelope("smtp", mail_from="", rcpt_tos=(rcpt,)))
    assert result.attribution["send_id"] == 777 and result.attribution["verp_token"]


def test_a_tampered_token_leaves_the_event_unattributed_but_stored():
    rcpt = verp.encode_token(777, KEY, "send.example.com").replace("+t-", "+t-a")
    result = parse_bytes(postfix_dsn(), IngestConfig(verp_secret=KEY),
                         Envelope("smtp", mail_from="", rcpt_tos=(rcpt,)))
    assert result.events and result.error is None
    assert "send_id" not in result.attribution and result.attribution["verp_token"]


def test_a_bounce_naming_nobody_takes_its_recipient_from_classic_verp():
    raw = (b"From: MAILER-DAEMON@mx.example.net\nTo: bounces+gone=example.org@send.example.com\n"
           b"Subject: Undelivered Mail Returned to Sender\n\nThe message could not be delivered.\n")
    result = parse_bytes(raw, IngestConfig())
    assert result.kind == "bounce" and result.error is None
    assert [e["recipient"] for e in result.events] == ["gone@example.org"]
    assert result.attribution["verp_recipient"] == "gone@example.org"


def test_token_attribution_reaches_the_stored_event(store):
    from sqlalchemy import select

    from ingest.pipeline import Pipeline
    from store import models as m

    pipeline = Pipeline(store, IngestConfig(verp_secret=KEY))
    good = verp.encode_token(9001, KEY, "send.example.com")
    bad = good.replace("+t-", "+t-b")
    pipeline.ingest(postfix_dsn(message_id="<a@x>"), Envelope("smtp", mail_from="", rcpt_tos=(good,)))
    pipeline.ingest(postfix_dsn(message_id="<b@x>"), Envelope("smtp", mail_from="", rcpt_tos=(bad,)))
    with store() as s:
        rows = {e.orig_message_id: e for e in s.scalars(select(m.BounceEvent))}
    assert rows["<a@x>"].send_id == 9001 and rows["<a@x>"].verp_token
    assert rows["<b@x>"].send_id is None and rows["<b@x>"].verp_token  # stored, not trusted


def test_a_token_made_for_one_purpose_is_refused_for_another():
    token = verp.make_token(5, KEY, purpose="unsubscribe")
    assert verp.read_token(token, KEY, purpose="unsubscribe").send_id == 5
    assert verp.read_token(token, KEY).valid is False  # not a return path
    assert verp.read_token(verp.make_token(5, KEY), KEY, purpose="unsubscribe").valid is False
