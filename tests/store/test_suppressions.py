"""The shared suppression store functions: the feed, scopes, normalising, files."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from store.addresses import AddressError, normalise
from store.suppressions import (ScopeError, add_suppression, changes_since, feed_csv, feed_document,
                                is_suppressed, normalise_scope, remove_suppression)
from store.suppression_files import export, import_csv

NOW = datetime(2026, 5, 4, 9, 30, tzinfo=timezone.utc)


def days(n):
    return timedelta(days=n)


@pytest.mark.parametrize("given, expected", [
    ("Bob@Example.COM", "bob@example.com"),
    ("  <bob@example.com.>  ", "bob@example.com"),
    ("josé@Bücher.example", "josé@xn--bcher-kva.example"),
    ("a+tag@xn--bcher-kva.example", "a+tag@xn--bcher-kva.example"),
])
def test_one_address_normaliser(given, expected):
    assert normalise(given) == expected


@pytest.mark.parametrize("bad", ["", "nobody", "@example.com", "bob@", "bo b@example.com", "a@b..c"])
def test_what_is_not_an_address_is_said(bad):
    with pytest.raises(AddressError):
        normalise(bad)


@pytest.mark.parametrize("given, expected", [("global", "global"), (" GLOBAL ", "global"), (None, "global"),
                                             ("domain:News.Example.com.", "domain:news.example.com"),
                                             ("campaign: spring-26 ", "campaign:spring-26")])
def test_scopes(given, expected):
    assert normalise_scope(given) == expected


@pytest.mark.parametrize("bad", ["domain:", "campaign:", "list:x", "everything"])
def test_bad_scopes_are_refused(bad):
    with pytest.raises(ScopeError, match="global"):
        normalise_scope(bad)


def test_the_feed_cursor_only_grows_and_pages_with_next(store):
    with store.begin() as s:
        for i in range(5):
            add_suppression(s, f"u{i}@example.com", reason="manual", source="manual", now=NOW + days(i))
        remove_suppression(s, "u1@example.com", reason="asked", now=NOW + days(6))
    seen, cursor = [], 0
    with store() as s:
        while True:
            rows, nxt = changes_since(s, cursor, limit=2)
            if not rows:
                assert nxt == cursor  # nothing new: ask again with the same cursor
                break
            assert len(rows) <= 2 and nxt == rows[-1]["cursor"]
            seen += rows
            cursor = nxt
    cursors = [r["cursor"] for r in seen]
    assert cursors == sorted(cursors) and len(set(cursors)) == 6
    assert seen[-1] == {"cursor": cursors[-1], "op": "remove", "address": "u1@example.com", "scope": "global",
                        "reason": "asked", "at": "2026-05-10T09:30:00Z"}
    assert all(set(r) == {"cursor", "op", "address", "scope", "reason", "at"} for r in seen)
    doc = json.loads(json.dumps(feed_document(seen[:1], cursors[0])))
    assert doc == {"changes": [seen[0]], "next": cursors[0]} and isinstance(doc["next"], int)
    lines = list(csv.reader(io.StringIO(feed_csv(seen))))
    assert lines[0] == ["cursor", "op", "address", "scope", "reason", "at"] and len(lines) == 7


def test_cursors_are_never_reused(store, database):
    from sqlalchemy import text

    from store.engine import get_engine

    with store.begin() as s:
        add_suppression(s, "a@example.com", reason="r", source="manual", now=NOW)
        add_suppression(s, "b@example.com", reason="r", source="manual", now=NOW)
    with get_engine(database).begin() as conn:  # even if the newest change row were lost
        conn.execute(text("DELETE FROM suppression_changes WHERE cursor = 2"))
    with store.begin() as s:
        add_suppression(s, "c@example.com", reason="r", source="manual", now=NOW)
    with store() as s:
        assert [r["cursor"] for r in changes_since(s, 0)[0]] == [1, 3]


def test_an_unsubscribe_is_in_the_feed_at_once(store):
    with store() as s:
        _, before = changes_since(s, 0)
    with store.begin() as s:
        add_suppression(s, "Reader@Example.com", reason="one-click unsubscribe", source="unsubscribe", now=NOW,
                        scope="campaign:42")
    with store() as s:
        rows, _ = changes_since(s, before)
    assert [(r["op"], r["address"], r["scope"]) for r in rows] == [("add", "reader@example.com", "campaign:42")]


def test_scopes_are_kept_apart(store):
    with store.begin() as s:
        add_suppression(s, "a@example.com", reason="unsub", source="unsubscribe", now=NOW, scope="domain:news.example.com")
        add_suppression(s, "b@example.com", reason="unsub", source="unsubscribe", now=NOW, scope="campaign:7")
        add_suppression(s, "c@example.com", reason="userunknown", source="bounce", now=NOW)
    at = NOW + days(1)
    with store() as s:
        assert is_suppressed(s, "a@example.com", ["global"], now=at) is None
        assert is_suppressed(s, "A@Example.com", ["global", "domain:News.Example.com"], now=at) is not None
        assert is_suppressed(s, "a@example.com", ["global", "domain:shop.example.com"], now=at) is None
        assert is_suppressed(s, "b@example.com", ["global", "campaign:8"], now=at) is None
        assert is_suppressed(s, "b@example.com", ["campaign:7"], now=at).reason == "unsub"
        assert is_suppressed(s, "c@example.com", ["global", "campaign:7", "domain:x.example"], now=at) is not None


def test_expiry_and_a_stronger_suppression(store):
    with store.begin() as s:
        first, created = add_suppression(s, "a@example.com", reason="mailboxfull", source="bounce", now=NOW,
                                         expires_at=NOW + days(30))
        assert created
        _, created = add_suppression(s, "a@example.com", reason="again", source="bounce", now=NOW,
                                     expires_at=NOW + days(10))
        assert not created  # already covered
        second, created = add_suppression(s, "a@example.com", reason="unsubscribed", source="unsubscribe", now=NOW)
        assert created and first.removed_reason == "superseded"
    with store() as s:
        assert is_suppressed(s, "a@example.com", now=NOW + days(400)).id == second.id
        rows, _ = changes_since(s, 0)
    assert [(r["op"], r["reason"]) for r in rows] == [("add", "mailboxfull"), ("add", "unsubscribed")]
    with store.begin() as s:
        with pytest.raises(ValueError, match="not in the future"):
            add_suppression(s, "b@example.com", reason="x", source="manual", now=NOW, expires_at=NOW - days(1))
        with pytest.raises(ValueError, match="source"):
            add_suppression(s, "b@example.com", reason="x", source="guess", now=NOW)


def test_an_expired_suppression_no_longer_answers(store):
    with store.begin() as s:
        add_suppression(s, "a@example.com", reason="x", source="manual", now=NOW, expires_at=NOW + days(3))
    with store() as s:
        assert is_suppressed(s, "a@example.com", now=NOW + days(2)) is not None
        assert is_suppressed(s, "a@example.com", now=NOW + days(3)) is None


def test_export_then_import_gives_the_same_list(store, tmp_path, database):
    from store.config import DatabaseConfig
    from store.engine import session_factory, upgrade

    with store.begin() as s:
        add_suppression(s, "a@example.com", reason="userunknown", source="bounce", now=NOW)
        add_suppression(s, "b@example.com", reason="mailboxfull", source="bounce", now=NOW, expires_at=NOW + days(90))
        add_suppression(s, "c@example.com", reason="unsub", source="unsubscribe", now=NOW, scope="campaign:9")
        add_suppression(s, "hmac-sha256:" + "ab" * 32, reason="erased", source="manual", now=NOW)
    out = io.StringIO()
    with store() as s:
        assert export(s, out, "csv", NOW) == 4
    other = DatabaseConfig(url=f"sqlite:///{tmp_path}/other.db")
    upgrade(other)
    sessions = session_factory(other)
    with sessions.begin() as s:
        result = import_csv(s, io.StringIO(out.getvalue()), NOW)
    assert (result.added, result.already, result.errors) == (4, 0, [])
    again = io.StringIO()
    with sessions() as s:
        export(s, again, "csv", NOW)

    def strip(text):  # all but the source, which becomes 'import'
        return [(r["address"], r["scope"], r["reason"], r["expires_at"]) for r in csv.DictReader(io.StringIO(text))]

    assert strip(again.getvalue()) == strip(out.getvalue())
    with sessions.begin() as s:  # importing twice adds nothing
        assert import_csv(s, io.StringIO(out.getvalue()), NOW).already == 4
    js = io.StringIO()
    with store() as s:
        export(s, js, "json", NOW)
    assert [json.loads(line)["address"] for line in js.getvalue().splitlines()][:1] == ["a@example.com"]


def test_import_reports_each_bad_row_with_its_line(store):
    text = ("address,scope,reason,expires_at\n"
            "good@example.com,,,\n"
            "not an address,,,\n"
            "x@example.com,list:3,,\n"
            "y@example.com,,,next tuesday\n"
            ",global,manual,\n"
            "z@example.com,global,manual,2020-01-01\n"
            "w@example.com,global,manual,2027-01-01,extra\n"
            "Good@Example.com,,,\n")
    with store.begin() as s:
        result = import_csv(s, io.StringIO(text), NOW)
    assert result.added == 1 and result.already == 1
    assert [line for line, _ in result.errors] == [3, 4, 5, 6, 7, 8]
    messages = dict(result.errors)
    assert "not an e-mail address" in messages[3] and "scope" in messages[4] and "ISO" in messages[5]
    assert messages[6] == "no address" and "future" in messages[7] and "fields" in messages[8]
    with store.begin() as s:
        bad = import_csv(s, io.StringIO("email\nx@example.com\n"), NOW)
    assert bad.added == 0 and bad.errors[0][0] == 1 and "address" in bad.errors[0][1]


def test_many_at_once_writes_the_same_as_one_by_one(store):
    from store.suppressions import add_suppressions

    with store.begin() as s:
        add_suppression(s, "old@example.com", reason="manual", source="manual", now=NOW)
        add_suppression(s, "soft@example.com", reason="mailboxfull", source="bounce", now=NOW,
                        expires_at=NOW + days(30))
        created = add_suppressions(s, [{"address": a, "reason": "userunknown", "event_table": "bounce_events",
                                        "event_id": i} for i, a in enumerate(
                                            ["new1@example.com", "old@example.com", "new2@example.com",
                                             "new1@example.com", "soft@example.com"])],
                                   source="bounce", now=NOW + days(1))
    assert created == 3  # new1, new2, and soft (permanent replaces expiring); old was covered
    with store() as s:
        rows, _ = changes_since(s, 2)
        assert [(r["address"], r["reason"]) for r in rows] == [
            ("soft@example.com", "userunknown"), ("new1@example.com", "userunknown"),
            ("new2@example.com", "userunknown")]
        row = is_suppressed(s, "new2@example.com", now=NOW + days(2))
        assert (row.event_id, row.source, row.expires_at) == (2, "bounce", None)
