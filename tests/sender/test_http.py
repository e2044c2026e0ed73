"""The suppression feed and look-ups over real HTTP: shape, cursor order, paging, tokens, writes."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from sender.config import WebConfig
from sender.web import create_app
from store.addresses import address_hash
from store.suppressions import FEED_COLUMNS, add_suppression, changes_since, remove_suppression
from tests.sender.http_client import serve

T = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
READ = "read-token-0123456789abcdef"
WRITE = "write-token-0123456789abcdef"
SALT = "salt-for-the-tests"
FEED = "/api/v1/suppressions"


def app_for(store, **web):
    web = {"read_tokens": (READ,), "write_tokens": (WRITE,), "secret": "s3cret-unsubscribe-key", **web}
    config = SimpleNamespace(database=None, web=WebConfig(**web), privacy=SimpleNamespace(salt=SALT))
    return create_app(config, sessions=store, clock=lambda: T)


@pytest.fixture
def api(store):
    with serve(app_for(store)) as client:
        yield client


@pytest.fixture
def history(store):
    """Three adds and a removal, in that order."""
    with store.begin() as s:
        add_suppression(s, "Gone@Example.NET", reason="userunknown", source="bounce", now=T - timedelta(hours=3))
        add_suppression(s, "abuse@example.org", reason="abuse", source="complaint", now=T - timedelta(hours=2))
        add_suppression(s, "later@example.com", reason="manual", source="manual", now=T - timedelta(hours=2),
                        scope="domain:news.example")
        remove_suppression(s, "abuse@example.org", reason="complaint withdrawn", now=T - timedelta(hours=1))


# -- the feed ---------------------------------------------------------------------------------

def test_the_feed_is_the_change_log_in_cursor_order_in_the_contract_shape(api, history):
    answer = api.get(f"{FEED}?since=0", token=READ)
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/json")
    doc = answer.json
    assert list(doc) == ["changes", "next"]
    rows = doc["changes"]
    assert [list(r) for r in rows] == [list(FEED_COLUMNS)] * 4
    assert [(r["op"], r["address"], r["scope"], r["reason"]) for r in rows] == [
        ("add", "gone@example.net", "global", "userunknown"),
        ("add", "abuse@example.org", "global", "abuse"),
        ("add", "later@example.com", "domain:news.example", "manual"),
        ("remove", "abuse@example.org", "global", "complaint withdrawn")]
    cursors = [r["cursor"] for r in rows]
    assert all(isinstance(c, int) for c in cursors) and cursors == sorted(set(cursors))
    assert doc["next"] == cursors[-1] and answer.headers["X-Next-Cursor"] == str(cursors[-1])
    assert rows[0]["at"] == "2026-06-01T09:00:00Z"


def test_limit_and_next_page_through_without_missing_a_change(api, history, store):
    seen, since = [], 0
    while True:
        doc = api.get(f"{FEED}?since={since}&limit=3", token=READ).json
        assert len(doc["changes"]) <= 3
        if not doc["changes"]:
            assert doc["next"] == since  # nothing new: ask again with the same cursor
            break
        seen += doc["changes"]
        since = doc["next"]
    with store() as s:
        assert seen == changes_since(s, 0, 100)[0]
    # a change made later is found after the last cursor
    with store.begin() as s:
        add_suppression(s, "new@example.net", reason="manual", source="manual", now=T)
    doc = api.get(f"{FEED}?since={since}", token=READ).json
    assert [r["address"] for r in doc["changes"]] == ["new@example.net"] and doc["next"] > since


def test_a_limit_over_the_maximum_is_capped_not_refused(api, history):
    doc = api.get(f"{FEED}?since=0&limit=99999999999999999999999", token=READ).json
    assert len(doc["changes"]) == 4


def test_the_feed_as_csv_has_the_same_rows(api, history):
    as_json = api.get(f"{FEED}?since=1&limit=2", token=READ).json
    answer = api.get(f"{FEED}?since=1&limit=2&format=csv", token=READ)
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/csv")
    assert answer.text.splitlines()[0] == ",".join(FEED_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [{k: str(v) for k, v in r.items()} for r in as_json["changes"]] == rows
    assert answer.headers["X-Next-Cursor"] == str(as_json["next"])


@pytest.mark.parametrize("query, word", [
    ("since=-1", "since"), ("since=abc", "since"), ("since=99999999999999999999999", "since"),
    ("limit=0", "limit"), ("limit=lots", "limit"), ("limit=1e3", "limit"),
    ("format=xml", "format")])
def test_bad_parameters_are_a_400_with_a_sentence(api, query, word):
    answer = api.get(f"{FEED}?{query}", token=READ)
    assert answer.status == 400
    assert word in answer.json["error"] and len(answer.json["error"].split()) > 4


# -- tokens -----------------------------------------------------------------------------------

def test_the_feed_needs_a_read_or_write_token(api, history):
    none = api.get(FEED)
    assert none.status == 401 and none.headers["WWW-Authenticate"].startswith("Bearer")
    assert "bearer token" in none.json["error"]
    assert api.get(FEED, token="not-a-token-at-all-0000").status == 401
    assert api.get(FEED, headers={"Authorization": f"Basic {READ}"}).status == 401
    assert api.get(FEED, token=READ[:-1]).status == 401
    assert api.get(FEED, token=READ).status == 200
    assert api.get(FEED, token=WRITE).status == 200  # a write token reads too
    assert api.get(f"{FEED}/gone@example.net").status == 401


def test_a_read_token_cannot_write(api, history, store):
    post = api.call("POST", FEED, token=READ, json_body={"address": "x@example.net", "reason": "manual"})
    delete = api.call("DELETE", f"{FEED}/gone@example.net?reason=oops", token=READ)
    assert post.status == delete.status == 403
    assert "insufficient_scope" in post.headers["WWW-Authenticate"]
    assert "write_tokens" in post.json["error"]
    assert api.call("POST", FEED, json_body={"address": "x@example.net", "reason": "m"}).status == 401
    with store() as s:
        assert len(changes_since(s, 0)[0]) == 4  # nothing written


def test_without_configured_tokens_everything_is_refused(store, caplog):
    with serve(app_for(store, read_tokens=(), write_tokens=())) as api:
        assert api.get(FEED, token=READ).status == 401
    assert "refuses every request" in caplog.text


def test_a_short_token_is_refused_by_the_configuration():
    with pytest.raises(ValueError, match="at least 16 characters"):
        WebConfig(read_tokens=("short",))


# -- look-ups ---------------------------------------------------------------------------------

def test_a_look_up_says_whether_for_which_scopes_and_why(api, store):
    with store.begin() as s:
        add_suppression(s, "bob@example.net", reason="userunknown", source="bounce", now=T - timedelta(days=1))
        add_suppression(s, "bob@example.net", reason="opt-out", source="unsubscribe", now=T,
                        scope="domain:news.example", expires_at=T + timedelta(days=30))
    doc = api.get(f"{FEED}/Bob@EXAMPLE.net", token=READ).json
    assert doc["address"] == "bob@example.net" and doc["suppressed"] is True
    assert doc["suppressions"] == [
        {"scope": "global", "reason": "userunknown", "source": "bounce", "created_at": "2026-05-31T12:00:00Z",
         "expires_at": None, "erased": False},
        {"scope": "domain:news.example", "reason": "opt-out", "source": "unsubscribe",
         "created_at": "2026-06-01T12:00:00Z", "expires_at": "2026-07-01T12:00:00Z", "erased": False}]
    only = api.get(f"{FEED}/bob@example.net?scope=domain:NEWS.example", token=READ).json
    assert [r["scope"] for r in only["suppressions"]] == ["domain:news.example"]
    clear = api.get(f"{FEED}/someone@example.net", token=READ)
    assert clear.status == 200 and clear.json == {"address": "someone@example.net", "suppressed": False,
                                                  "suppressions": []}


def test_an_erased_address_answers_through_its_salted_hash(api, store):
    digest = address_hash("erased@example.net", SALT)
    with store.begin() as s:
        add_suppression(s, f"hmac-sha256:{digest}", reason="abuse", source="complaint", now=T)
    doc = api.get(f"{FEED}/Erased@Example.net", token=READ).json
    assert doc["suppressed"] is True and doc["suppressions"][0]["erased"] is True
    by_hash = api.get(f"{FEED}/hmac-sha256:{digest}", token=READ).json
    assert by_hash["address"] == f"hmac-sha256:{digest}" and by_hash["suppressed"] is True


@pytest.mark.parametrize("address", ["no-at-sign", "two words@example.net", "hmac-sha256:zz"])
def test_a_malformed_address_is_a_400(api, address):
    answer = api.get(f"{FEED}/{address.replace(' ', '%20')}", token=READ)
    assert answer.status == 400 and answer.json["error"]


# -- writes -----------------------------------------------------------------------------------

def test_post_adds_a_manual_suppression_once_and_the_feed_shows_it(api, store):
    body = {"address": " Carol@Example.NET ", "reason": "asked by phone", "scope": "domain:news.example"}
    first = api.call("POST", FEED, token=WRITE, json_body=body)
    assert first.status == 201
    assert first.json == {"address": "carol@example.net", "scope": "domain:news.example", "reason": "asked by phone",
                          "created": True, "expires_at": None}
    again = api.call("POST", FEED, token=WRITE, json_body=body)
    assert again.status == 200 and again.json["created"] is False
    doc = api.get(f"{FEED}?since=0", token=READ).json
    assert [(r["op"], r["address"], r["scope"]) for r in doc["changes"]] == [
        ("add", "carol@example.net", "domain:news.example")]
    expiring = api.call("POST", FEED, token=WRITE, json_body={"address": "dan@example.net", "reason": "pause",
                                                              "expires_at": "2026-07-01"})
    assert expiring.status == 201 and expiring.json["expires_at"] == "2026-07-01T00:00:00Z"


@pytest.mark.parametrize("body, word", [
    (b"not json", "JSON object"), (b"[1, 2]", "JSON object"),
    (b'{"reason": "x"}', "address"), (b'{"address": "a@example.net"}', "reason"),
    (b'{"address": "a@example.net", "reason": 5}', "reason"),
    (b'{"address": "nobody", "reason": "x"}', "e-mail address"),
    (b'{"address": "a@example.net", "reason": "x", "scope": "planet:mars"}', "scope"),
    (b'{"address": "a@example.net", "reason": "x", "expires_at": "soon"}', "expires_at"),
    (b'{"address": "a@example.net", "reason": "x", "expires_at": "2020-01-01"}', "future")])
def test_a_bad_body_is_a_400_and_writes_nothing(api, store, body, word):
    answer = api.call("POST", FEED, token=WRITE, data=body, headers={"Content-Type": "application/json"})
    assert answer.status == 400 and word in answer.json["error"]
    with store() as s:
        assert changes_since(s, 0)[0] == []


def test_delete_lifts_a_suppression_with_a_reason(api, history, store):
    answer = api.call("DELETE", f"{FEED}/GONE@example.net", token=WRITE, json_body={"reason": "address fixed"})
    assert answer.status == 200 and answer.json == {"address": "gone@example.net", "scope": "global", "removed": 1}
    assert api.get(f"{FEED}/gone@example.net", token=READ).json["suppressed"] is False
    last = api.get(f"{FEED}?since=4", token=READ).json["changes"]
    assert [(r["op"], r["address"], r["reason"]) for r in last] == [("remove", "gone@example.net", "address fixed")]
    again = api.call("DELETE", f"{FEED}/gone@example.net", token=WRITE, json_body={"reason": "twice"})
    assert again.status == 404 and "not suppressed" in again.json["error"]
    # the query-string form, for clients that cannot send a body with DELETE
    scoped = api.call("DELETE", f"{FEED}/later@example.com?reason=ok&scope=domain:news.example", token=WRITE)
    assert scoped.status == 200 and scoped.json["removed"] == 1
    no_reason = api.call("DELETE", f"{FEED}/abuse@example.org", token=WRITE)
    assert no_reason.status == 400 and "reason" in no_reason.json["error"]
