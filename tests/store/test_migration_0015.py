"""Migration 0015: provider names of the classifier's old list are rewritten to the one vocabulary."""
from __future__ import annotations

import importlib

from sqlalchemy import text

from store.engine import get_engine, upgrade

MIGRATION = importlib.import_module("store.migrations.versions.0015_one_provider_vocabulary")
AT = "2026-11-03 10:00:00+00:00"


def test_the_migration_renames_what_the_vocabulary_calls_former_names():
    from ingest.providers import renamed

    assert MIGRATION.RENAMED == renamed()


def test_aol_events_and_their_suppression_rows_become_yahoo(database):
    upgrade(database, "0014")
    engine = get_engine(database)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO inbound_messages (sha256, received_at, source, size, kind, status) "
                          "VALUES ('0015', :at, 'file', 1, 'bounce', 'parsed')"), {"at": AT})
        msg = conn.execute(text("SELECT id FROM inbound_messages")).scalar_one()
        for recipient, provider in (("a@aol.com", "aol"), ("b@gmail.com", "google"), ("c@corp.example", None)):
            conn.execute(text("INSERT INTO bounce_events (message_id, occurred_at, recipient, provider, reason, "
                              "hard, category) VALUES (:msg, :at, :r, :p, 'userunknown', true, 'hygiene')"),
                         {"msg": msg, "at": AT, "r": recipient, "p": provider})
        conn.execute(text("INSERT INTO suppression_evidence (address, kind, reason, occurred_at, bounce_event_id, "
                          "message_key, provider) VALUES ('a@aol.com', 'soft', 'mailboxfull', :at, 1, 'k', 'aol')"),
                     {"at": AT})
        conn.execute(text("INSERT INTO suppression_holds (address, provider, bounce_event_id, held_at) "
                          "VALUES ('a@aol.com', 'aol', 1, :at)"), {"at": AT})
    assert upgrade(database) is not None
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT recipient, provider FROM bounce_events")).all()) == {
            "a@aol.com": "yahoo", "b@gmail.com": "google", "c@corp.example": None}
        assert conn.execute(text("SELECT provider FROM suppression_evidence")).scalar_one() == "yahoo"
        assert conn.execute(text("SELECT provider FROM suppression_holds")).scalar_one() == "yahoo"
