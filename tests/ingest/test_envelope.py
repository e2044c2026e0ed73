"""The one envelope, from the collector through the spool to the store; and the spool files
earlier versions wrote, which must still be read after an upgrade."""
from __future__ import annotations

import json

from sqlalchemy import select

from ingest.envelope import Envelope
from ingest.spool import Item, Spool
from ingest.spool_worker import SpoolWorker
from store import models as m
from tests.ingest.messages import postfix_dsn

SMTP = Envelope("smtp", "smtp 192.0.2.7 helo=mx.example.net", "", ("bounces+gone=example.net@send.example.com",),
                client_address="192.0.2.7", helo="mx.example.net", spooled_at=1700000000.5)


def test_the_envelope_reads_back_as_it_was_written():
    assert Envelope.from_dict(json.loads(json.dumps(SMTP.to_dict()))) == SMTP
    imap = Envelope("imap", "imap imaps://fbl@mail.example.com:993/INBOX uid 7", spooled_at=1.0)
    assert Envelope.from_dict(imap.to_dict()) == imap and not imap.smtp and SMTP.smtp


def test_a_missing_or_damaged_head_is_the_spool_default_not_an_error():
    assert Envelope.from_dict({}) == Envelope("spool")
    assert Envelope.from_dict({"source": 3, "origin": ["x"], "envelope": "?", "spooled_at": "now"}) == Envelope("spool")
    assert Envelope.from_dict({"envelope": {"mail_from": "a@example.org", "rcpt_tos": "b@example.org"}}) \
        == Envelope("spool", mail_from="a@example.org", rcpt_tos=())


# Exactly what the version before this one wrote (ingest/spool.py's Item.meta): a one-message
# file of the IMAP collector, one of a message with an SMTP envelope, and a group file of the
# SMTP collector's group committer.
OLD_IMAP = (b'#postwatch-spool 1 {"source":"imap","origin":"imap imaps://fbl@mail.example.com:993/INBOX uid 9",'
            b'"envelope":null,"spooled_at":1733500000.25}\n')
OLD_SMTP = (b'#postwatch-spool 1 {"source":"smtp","origin":"smtp 192.0.2.1 helo=mx.example.net",'
            b'"envelope":{"mail_from":"","rcpt_tos":["bounces@example.com"]},"spooled_at":1733500001.0}\n')


def _old_group(raws: list[bytes]) -> bytes:
    metas = [{"source": "smtp", "origin": f"smtp 192.0.2.{i} helo=mx{i}",
              "envelope": {"mail_from": f"s{i}@example.net", "rcpt_tos": [f"bounces+u{i}=example.net@send.example.com"]},
              "spooled_at": 1733500002.0, "size": len(raw)} for i, raw in enumerate(raws)]
    return b"#postwatch-spool 2 " + json.dumps({"messages": metas}, separators=(",", ":")).encode() + b"\n" + b"".join(raws)


def test_spool_files_of_the_previous_version_are_read_with_their_envelope(tmp_path):
    spool = Spool(tmp_path)
    a, b, c, d = (postfix_dsn(message_id=f"<old-{i}@send.example.com>") for i in range(4))
    (spool.new / "1-old-imap.msg").write_bytes(OLD_IMAP + a)
    (spool.new / "2-old-smtp.msg").write_bytes(OLD_SMTP + b)
    (spool.new / "3-old-group.msg").write_bytes(_old_group([c, d]))
    imap = spool.read(spool.new / "1-old-imap.msg")
    assert imap.raw == a and imap.envelope == Envelope(
        "imap", "imap imaps://fbl@mail.example.com:993/INBOX uid 9", spooled_at=1733500000.25)
    smtp = spool.read(spool.new / "2-old-smtp.msg")
    assert smtp.raw == b and smtp.envelope == Envelope(
        "smtp", "smtp 192.0.2.1 helo=mx.example.net", "", ("bounces@example.com",), spooled_at=1733500001.0)
    group = spool.read_all(spool.new / "3-old-group.msg")
    assert [e.raw for e in group] == [c, d]
    assert group[1].envelope == Envelope("smtp", "smtp 192.0.2.1 helo=mx1", "s1@example.net",
                                         ("bounces+u1=example.net@send.example.com",), spooled_at=1733500002.0)
    spool.close()


def test_what_the_spool_writes_now_keeps_the_previous_layout(tmp_path):
    """A spool written now is still read by the version before (a downgrade loses nothing):
    the same keys in the same places, with the client's address and name beside them."""
    spool = Spool(tmp_path)
    [path] = spool.put_many([Item(b"Subject: x\r\n\r\nx\r\n", SMTP)])
    head = json.loads(path.read_bytes().split(b"\n", 1)[0][len(b"#postwatch-spool 1 "):])
    assert head == {"source": "smtp", "origin": SMTP.origin, "spooled_at": 1700000000.5,
                    "envelope": {"mail_from": "", "rcpt_tos": list(SMTP.rcpt_tos), "client_address": "192.0.2.7",
                                 "helo": "mx.example.net"}}
    [unstamped] = spool.put_many([Item(b"Subject: y\r\n\r\ny\r\n", Envelope("imap", "imap uid 1"))])
    assert spool.read(unstamped).envelope.spooled_at is not None  # stamped when written
    spool.close()


def test_old_spool_files_are_stored_with_their_envelope(tmp_path, store, pipeline):
    spool = Spool(tmp_path)
    a, b, c = (postfix_dsn(message_id=f"<stored-{i}@send.example.com>") for i in range(3))
    (spool.new / "1-old-imap.msg").write_bytes(OLD_IMAP + a)
    (spool.new / "2-old-smtp.msg").write_bytes(OLD_SMTP + b)
    (spool.new / "3-old-group.msg").write_bytes(_old_group([c]))
    assert SpoolWorker(spool, pipeline).drain() == 3 and spool.count() == 0
    with store() as session:
        rows = session.execute(select(m.InboundMessage.source, m.InboundMessage.origin, m.InboundMessage.envelope_from,
                                      m.InboundMessage.envelope_to, m.InboundMessage.status)
                               .order_by(m.InboundMessage.id)).all()
    assert [tuple(r) for r in rows] == [
        ("imap", "imap imaps://fbl@mail.example.com:993/INBOX uid 9", None, None, "parsed"),
        ("smtp", "smtp 192.0.2.1 helo=mx.example.net", "", ["bounces@example.com"], "parsed"),
        ("smtp", "smtp 192.0.2.0 helo=mx0", "s0@example.net", ["bounces+u0=example.net@send.example.com"], "parsed")]
    spool.close()
