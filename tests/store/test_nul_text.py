"""A NUL character in text taken from a message (a bounce's diagnostic, a recipient, an ARF
field, an origin): PostgreSQL text cannot hold it, and a batch holding one failed whole, at
every retry. It is stored as U+FFFD there, by the COPY of store.bulk and on every other
statement; SQLite keeps it as it is."""
from sqlalchemy import text

from ingest.envelope import Envelope
from store.engine import NUL_STANDIN, get_engine
from tests.ingest.messages import postfix_dsn


def test_nul_in_message_text_is_stored_on_both_back_ends(pipeline, store, database):
    dsn = postfix_dsn().replace(b"User unknown", b"User\x00unknown").replace(b"gone@example.net", b"go\x00ne@example.net")
    junk = b"Subject: nothing\x00 here\n\nnot feedback\x00\n"
    outcomes = list(pipeline.ingest_many([(dsn, Envelope("smtp", "smtp helo=a\x00b", "", ("bounces@example.com",))),
                                          (junk, Envelope("file", "junk\x00.eml"))]))
    assert [(o.kind, o.status) for o in outcomes] == [("bounce", "parsed"), ("unknown", "quarantined")]
    nul = NUL_STANDIN if get_engine(database).dialect.name == "postgresql" else "\x00"
    with store() as s:
        diagnostic, recipient = s.execute(text("select diagnostic, recipient from bounce_events")).one()
        origins = sorted(s.execute(text("select origin from inbound_messages")).scalars())
    assert f"User{nul}unknown" in diagnostic and recipient == f"go{nul}ne@example.net"
    assert origins == [f"junk{nul}.eml", f"smtp helo=a{nul}b"]
