"""The preference centre end to end: real campaigns to a local SMTP sink, the unsubscribe link
of each received message opened in headless Chromium on the real web server (127.0.0.1), a
choice made per recipient (leave a topic, pause, fewer messages, unsubscribe from all), then
the sender skipping exactly what was chosen — as time moves on the injected clock."""
from __future__ import annotations

import email
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from ingest.verp import make_token
from sender.campaign import Settings, send_campaign
from sender.config import PreferencesConfig, WebConfig
from sender.web import create_app
from store.suppressions import Suppression, add_suppression, changes_since, suppressions_of
from store.volume import SendLog
from tests.clock import Clock
from tests.sender.helpers import UNSUB_KEY, make_template, settings, sink  # noqa: F401
from tests.sender.http_client import serve
from tests.test_e2e_browser import browser  # noqa: F401  (headless Chromium, Debian's chromedriver)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
READ = "read-token-for-preferences-0123"
PREFS = PreferencesConfig(topics=("news:Product news", "tips:Tips and guides"))
PEOPLE = ("ann@example.org", "bob@example.org", "cat@example.org", "dan@example.org", "eve@example.org")


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture
def web(store, clock):
    config = SimpleNamespace(database=None, web=WebConfig(secret=UNSUB_KEY, read_tokens=(READ,)),
                             privacy=SimpleNamespace(salt="salt-for-preferences"), preferences=PREFS)
    with serve(create_app(config, sessions=store, clock=clock)) as client:
        yield client


def run(store, tmp_path, sink, clock, campaign: str, *topics: str, people=PEOPLE):
    """Send `campaign` (about `topics`) to `people`; returns who the sink received it for."""
    (tmp_path / f"{campaign}.csv").write_text("email,name\n" + "".join(f"{p},{p[:3]}\n" for p in people))
    before = len(sink.received)
    report = send_campaign(store, make_template(tmp_path / "t"), tmp_path / f"{campaign}.csv",
                           replace(settings(sink.address, campaign=campaign), topics=topics),
                           clock=clock)
    assert not report.errors and report.aborted is None
    return sorted(r.rcpt_tos[0] for r in sink.received[before:])


def unsubscribe_links(sink, base: str) -> dict[str, str]:
    """recipient -> the https link of its message's List-Unsubscribe, pointed at the test server."""
    out = {}
    for received in sink.received:
        header = email.message_from_bytes(received.data)["List-Unsubscribe"]
        url = re.search(r"<(https://[^>]+)>", header).group(1)
        out[received.rcpt_tos[0]] = url.replace("https://pw.example.com", base)
    return out


def feed(store) -> list[tuple[str, str, str, str]]:
    with store() as s:
        return [(c["op"], c["address"], c["scope"], c["reason"]) for c in changes_since(s, 0)[0]]


def test_choices_made_in_the_browser_are_what_the_sender_skips(store, tmp_path, sink, clock, web, browser):
    from selenium.webdriver.common.by import By

    assert run(store, tmp_path, sink, clock, "welcome") == list(PEOPLE)
    links = unsubscribe_links(sink, web.base)

    def submit(button_id: str) -> None:
        """Click a button that posts the form and wait for the answer's page to replace this one
        (a click does not wait for the navigation it starts). chromedriver says a node of the
        page being left is gone either as a stale element or as a node that "does not belong to
        the document": both mean the page was left."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        def gone(exc: Exception) -> bool:
            return isinstance(exc, StaleElementReferenceException) or "does not belong to the document" in str(exc)

        page = browser.find_element(By.TAG_NAME, "html")
        try:
            browser.find_element(By.ID, button_id).click()
        except WebDriverException as exc:
            if not gone(exc):
                raise

        def left(_driver) -> bool:
            try:
                page.is_enabled()
            except WebDriverException as exc:
                if gone(exc):
                    return True
                raise
            return False

        WebDriverWait(browser, 20).until(left)

    def open_page(who: str) -> None:
        browser.get(links[who])
        assert browser.find_element(By.TAG_NAME, "h1").text == "Your e-mail preferences"
        assert f"{who[0]}\u2022\u2022\u2022@example.org" in browser.page_source and who not in browser.page_source

    # the page only shows: nothing is stored by opening it (link scanners fetch every link)
    open_page("ann@example.org")
    assert browser.find_element(By.ID, "topic-news").is_selected() and browser.find_element(By.ID, "topic-tips").is_selected()
    assert feed(store) == []
    # ann leaves the tips
    browser.find_element(By.ID, "topic-tips").click()
    submit("save-topics")
    assert "topics are updated" in browser.find_element(By.ID, "notice").text
    open_page("ann@example.org")
    assert browser.find_element(By.ID, "topic-news").is_selected()
    assert not browser.find_element(By.ID, "topic-tips").is_selected()
    # bob pauses for 30 days
    open_page("bob@example.org")
    submit("pause-30")
    assert browser.find_element(By.ID, "notice").text == "Paused: no mail until 01 April 2026."
    assert "Paused until 01 April 2026" in browser.find_element(By.ID, "paused").text
    # cat leaves altogether
    open_page("cat@example.org")
    submit("unsubscribe-all")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Unsubscribed"
    browser.get(links["cat@example.org"])
    assert "is unsubscribed" in browser.page_source and not browser.find_elements(By.TAG_NAME, "form")
    # dan wants one message a week at most
    open_page("dan@example.org")
    browser.find_element(By.ID, "every-7").click()
    submit("save-frequency")
    assert "at most one message every 7 days" in browser.find_element(By.ID, "notice").text
    assert browser.find_element(By.ID, "every-7").is_selected()

    # every choice is a suppression, in the change log and the feed other senders read
    assert feed(store) == [("add", "ann@example.org", "topic:tips", "topic"),
                           ("add", "bob@example.org", "global", "pause"),
                           ("add", "cat@example.org", "global", "unsubscribe"),
                           ("add", "dan@example.org", "frequency:7d", "frequency")]
    api = web.get("/api/v1/suppressions?since=0", token=READ).json
    assert [c["scope"] for c in api["changes"]] == ["topic:tips", "global", "global", "frequency:7d"]
    with store() as s:
        pause = suppressions_of(s, "bob@example.org", now=NOW)[0]
        assert (pause.reason, pause.source) == ("pause", "unsubscribe")
        assert pause.expires_at.replace(tzinfo=timezone.utc) == NOW + timedelta(days=30)

    # the same day: tips skip ann (topic), bob (paused), cat (gone) and dan (mailed today)
    assert run(store, tmp_path, sink, clock, "tips-1", "tips") == ["eve@example.org"]
    assert run(store, tmp_path, sink, clock, "news-1", "news") == ["ann@example.org", "eve@example.org"]
    with store() as s:
        skipped = {r.recipient: r.reply for r in s.scalars(select(SendLog).where(SendLog.campaign == "tips-1",
                                                                               SendLog.result == "suppressed"))}
    assert skipped == {"ann@example.org": "suppressed in scope topic:tips",
                       "bob@example.org": "suppressed in scope global",
                       "cat@example.org": "suppressed in scope global",
                       "dan@example.org": "suppressed in scope frequency:7d"}

    # 31 days on: the pause has lapsed by itself, dan's week is over; ann still has left the tips
    clock.now = NOW + timedelta(days=31)
    assert run(store, tmp_path, sink, clock, "news-2", "news") == [
        "ann@example.org", "bob@example.org", "dan@example.org", "eve@example.org"]
    assert run(store, tmp_path, sink, clock, "tips-2", "tips") == ["bob@example.org", "eve@example.org"]
    # a campaign without a topic is for everyone still subscribed (dan: mailed today already)
    assert run(store, tmp_path, sink, clock, "notice") == ["ann@example.org", "bob@example.org", "eve@example.org"]


def test_one_click_stays_a_one_step_full_unsubscribe(store, web, clock, tmp_path, sink):
    assert run(store, tmp_path, sink, clock, "welcome", people=PEOPLE[:2]) == list(PEOPLE[:2])
    links = {k: v[len(web.base):] for k, v in unsubscribe_links(sink, web.base).items()}
    # ann chose topics before; a mailbox provider's one-click POST still removes her from everything,
    # even with a page field beside it
    answer = web.call("POST", links["ann@example.org"], form={"choice": "topics", "topic": "news"})
    assert answer.status == 200 and "topics are updated" in answer.text
    answer = web.call("POST", links["ann@example.org"],
                      form={"List-Unsubscribe": "One-Click", "choice": "pause", "days": "30"})
    assert answer.status == 200 and "is unsubscribed" in answer.text
    # a POST with no choice at all (a client that sends an empty body) unsubscribes too
    assert "is unsubscribed" in web.call("POST", links["bob@example.org"], data=b"").text
    assert feed(store) == [("add", "ann@example.org", "topic:tips", "topic"),
                           ("add", "ann@example.org", "global", "unsubscribe"),
                           ("add", "bob@example.org", "global", "unsubscribe")]
    with store() as s:
        row = next(r for r in suppressions_of(s, "ann@example.org", now=NOW) if r.scope == "global")
        assert (row.expires_at, row.details["method"]) == (None, "one-click")
    assert run(store, tmp_path, sink, clock, "news-1", "news", people=PEOPLE[:2]) == []


def test_a_topic_ticked_again_is_lifted_and_what_is_not_offered_changes_nothing(store, web, clock, tmp_path,
                                                                                 sink):
    run(store, tmp_path, sink, clock, "welcome", people=PEOPLE[:1])
    link = unsubscribe_links(sink, web.base)["ann@example.org"][len(web.base):]
    web.call("POST", link, form={"choice": "topics"})  # nothing ticked: leaves both
    answer = web.call("POST", link, data=b"choice=topics&topic=news&topic=tips",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 200
    before = feed(store)
    assert before == [("add", "ann@example.org", "topic:news", "topic"), ("add", "ann@example.org", "topic:tips", "topic"),
                      ("remove", "ann@example.org", "topic:news", "topic chosen again"),
                      ("remove", "ann@example.org", "topic:tips", "topic chosen again")]
    for form in ({"choice": "pause", "days": "45"}, {"choice": "frequency", "days": "3"},
                 {"choice": "topics", "topic": "gossip"}, {"choice": "pause", "days": "soon"}):
        answer = web.call("POST", link, form=form)
        assert answer.status == 400 and "Nothing was changed" in answer.text, form
    assert feed(store) == before
    # the page cannot be framed, cached or leak its URL
    page = web.get(link)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"


def test_a_frequency_choice_replaces_the_last_one_and_none_lifts_it(store, web, clock, tmp_path, sink):
    run(store, tmp_path, sink, clock, "welcome", people=PEOPLE[:1])
    link = unsubscribe_links(sink, web.base)["ann@example.org"][len(web.base):]
    for days in ("7", "30", "0"):
        assert web.call("POST", link, form={"choice": "frequency", "days": days}).status == 200
    assert feed(store) == [("add", "ann@example.org", "frequency:7d", "frequency"),
                           ("remove", "ann@example.org", "frequency:7d", "preference changed"),
                           ("add", "ann@example.org", "frequency:30d", "frequency"),
                           ("remove", "ann@example.org", "frequency:30d", "preference changed")]


def test_a_campaign_topic_must_be_offered_on_the_page():
    config = SimpleNamespace(sender=settings("127.0.0.1:25").sender, web=WebConfig(secret=UNSUB_KEY),
                             ingest=SimpleNamespace(verp_secret="v" * 20), privacy=SimpleNamespace(salt=""),
                             preferences=PREFS)
    assert Settings.from_config(config, "spring", topics=["News", " tips "]).topics == ("news", "tips")
    with pytest.raises(ValueError, match="'gossip' is not one of preferences.topics"):
        Settings.from_config(config, "spring", topics=["gossip"])


def test_a_configured_topic_is_a_name_the_store_takes_as_a_scope():
    from store.suppressions import normalise_scope

    config = PreferencesConfig(topics=("News:Product news", "tips.v2:Tips"))
    assert [normalise_scope("topic:" + name) for name in config.topic_names()] == ["topic:news", "topic:tips.v2"]
    for bad in (("a b:Spaces",), ("-news:A dash first",), ("news",), ("news:",), ("x:One", "X:Twice")):
        with pytest.raises(ValueError, match="preferences.topics"):
            PreferencesConfig(topics=bad)


def test_the_new_scopes_are_validated_in_the_store(store):
    from store.suppressions import ScopeError, normalise_scope

    assert normalise_scope("Topic:News") == "topic:news"
    assert normalise_scope("frequency:07d") == "frequency:7d" and normalise_scope("FREQUENCY:30") == "frequency:30d"
    assert normalise_scope("Sunset") == "sunset"
    for bad in ("topic:", "topic:a b", "frequency:0d", "frequency:400d", "frequency:weekly", "sunset:x"):
        with pytest.raises(ScopeError):
            normalise_scope(bad)
    with store.begin() as s:
        row, created = add_suppression(s, "a@example.org", reason="topic", source="unsubscribe", now=NOW,
                                       scope="topic:News")
        assert (row.scope, created) == ("topic:news", True)
    with store() as s:
        assert s.scalar(select(Suppression.scope)) == "topic:news"


def test_a_token_is_still_the_only_credential(store, web, clock, tmp_path, sink):
    run(store, tmp_path, sink, clock, "welcome", people=PEOPLE[:1])
    with store() as s:
        send_id = s.scalar(select(SendLog.id))
    forged = make_token(send_id, "not-the-key", purpose="unsubscribe")
    answer = web.call("POST", f"/unsubscribe/{forged}", form={"choice": "pause", "days": "30"})
    assert answer.status == 404 and feed(store) == []
