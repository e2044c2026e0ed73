"""One-click unsubscribe (RFC 8058) over real HTTP, posted the way Gmail posts it."""
from __future__ import annotations

import urllib.parse
from datetime import datetime, timezone

import pytest

from ingest.verp import make_token
from store.suppressions import Suppression, changes_since, is_suppressed
from store.volume import SendLog
from tests.sender.http_client import serve
from tests.sender.test_http import READ, T, app_for

SECRET = "s3cret-unsubscribe-key"
GMAIL = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Mozilla/5.0 (compatible; Google-Safety)"}


@pytest.fixture
def send(store):
    """A send-log row: the message an unsubscribe link came in."""
    with store.begin() as s:
        row = SendLog(sent_at=datetime(2026, 5, 30, tzinfo=timezone.utc), recipient="Reader@Example.NET",
                      recipient_domain="example.net", sending_domain="news.example", campaign="spring-sale",
                      result="sent", reply_code="250", reply="250 2.0.0 queued")
        s.add(row)
        s.flush()
        return row.id


@pytest.fixture
def web(store):
    with serve(app_for(store)) as client:
        yield client


def link(send_id: int, secret: str = SECRET, purpose: str = "unsubscribe") -> str:
    return f"/unsubscribe/{make_token(send_id, secret, purpose=purpose)}"


def feed(store):
    with store() as s:
        return changes_since(s, 0)[0]


def test_one_click_as_gmail_posts_it_unsubscribes_and_the_feed_shows_it(web, store, send):
    answer = web.call("POST", link(send), data=b"List-Unsubscribe=One-Click", headers=GMAIL)
    assert answer.status == 200  # no redirect, no login
    assert "Location" not in answer.headers and "unsubscribed" in answer.text
    doc = web.get("/api/v1/suppressions?since=0", token=READ).json
    assert [(r["op"], r["address"], r["scope"], r["reason"]) for r in doc["changes"]] == [
        ("add", "reader@example.net", "global", "unsubscribe")]
    with store() as s:
        row = is_suppressed(s, "reader@example.net", ["global"], now=T)
        assert (row.source, row.event_table, row.event_id, row.expires_at) == ("unsubscribe", "send_log", send, None)
        assert row.details == {"campaign": "spring-sale", "sending_domain": "news.example", "method": "one-click"}
    # providers may post twice; the second changes nothing
    assert web.call("POST", link(send), data=b"List-Unsubscribe=One-Click", headers=GMAIL).status == 200
    assert len(feed(store)) == 1


def test_get_shows_a_confirmation_page_and_writes_nothing(web, store, send):
    answer = web.get(link(send))
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/html")
    assert '<form method="post">' in answer.text and 'name="List-Unsubscribe" value="One-Click"' in answer.text
    assert "r•••@example.net" in answer.text and "reader@" not in answer.text.lower()
    assert answer.headers["Cache-Control"] == "no-store" and answer.headers["Referrer-Policy"] == "no-referrer"
    assert feed(store) == []
    # the page's button posts the form: then the page says so
    assert web.call("POST", link(send), form={"List-Unsubscribe": "One-Click"}).status == 200
    after = web.get(link(send))
    assert after.status == 200 and "is unsubscribed" in after.text and "<form" not in after.text


def tampered(token_path: str) -> str:
    head, token = token_path.rsplit("/", 1)
    flipped = token[:5] + ("a" if token[5] != "a" else "b") + token[6:]
    return f"{head}/{flipped}"


@pytest.mark.parametrize("make", [
    pytest.param(lambda sid: tampered(link(sid)), id="tampered"),
    pytest.param(lambda sid: link(sid, secret="another-key"), id="forged-with-another-key"),
    pytest.param(lambda sid: link(sid, purpose="verp"), id="a-return-path-token"),
    pytest.param(lambda sid: link(sid + 1000), id="no-such-send"),
    pytest.param(lambda sid: "/unsubscribe/" + urllib.parse.quote("x" * 200), id="too-long"),
    pytest.param(lambda sid: "/unsubscribe/not-base32!", id="garbage"),
])
def test_a_forged_or_tampered_token_is_refused_and_nothing_is_written(web, store, send, make):
    path = make(send)
    post = web.call("POST", path, data=b"List-Unsubscribe=One-Click", headers=GMAIL)
    get = web.get(path)
    assert post.status == get.status == 404
    assert "not valid" in post.text
    assert feed(store) == []


def test_the_domain_scope_suppresses_only_for_the_sending_domain(store, send):
    with serve(app_for(store, unsubscribe_scope="domain")) as web:
        assert "from news.example" in web.get(link(send)).text
        assert web.call("POST", link(send), data=b"List-Unsubscribe=One-Click", headers=GMAIL).status == 200
    with store() as s:
        assert is_suppressed(s, "reader@example.net", ["global"], now=T) is None
        assert is_suppressed(s, "reader@example.net", ["domain:news.example"], now=T).reason == "unsubscribe"


def test_without_a_secret_unsubscribe_links_are_refused_with_a_log_line(store, send, caplog):
    with serve(app_for(store, secret="")) as web:
        answer = web.call("POST", link(send), data=b"List-Unsubscribe=One-Click", headers=GMAIL)
    assert answer.status == 503 and "not configured" in answer.text
    assert "web.secret is empty" in caplog.text
    with store() as s:
        assert s.query(Suppression).count() == 0
