"""Open and click tracking end to end: a campaign sent through a real SMTP sink, its pixel and
links then fetched from the real web server (dashboard.server.create_server) on a real store."""
from __future__ import annotations

import dataclasses
import email
import email.policy
import html
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from ingest.verp import make_token
from postwatch.config import load
from sender.campaign import Settings, send_campaign
from sender.config import TrackingConfig
from store.engagement import EngagementEvent, TrackedCampaign
from store.volume import SendLog
from tests.clock import Clock
from tests.sender.helpers import UNSUB_KEY, make_template, settings, sink  # noqa: F401
from tests.sender.http_client import serve

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
BASE = "https://pw.example.com"
HTML = ('<html><body><p>Hi {{ name }}</p>'
        '<a href="https://shop.example.com/new?a=1&amp;b=2">new</a>'
        '<a href="https://shop.example.com/sale">sale</a>'
        '<a href="https://blog.example.com/post">post</a>'
        '<a href="mailto:help@example.com">mail us</a><a href="tel:+441234">call</a><a href="#top">top</a>'
        '<a href="{{ unsubscribe_url }}">leave</a></body></html>')
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
MPP = "Mozilla/5.0"


def html_part(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return msg.get_body(("html",)).get_content()


def text_part(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return msg.get_body(("plain",)).get_content()


def send(tmp_path, store, sink, *, track: bool = True, campaign: str = "spring", rows: str = "a@example.org,A\n"):
    (tmp_path / f"{campaign}.csv").write_text("email,name\n" + rows)
    s = dataclasses.replace(settings(sink.address, campaign=campaign), utm={"utm_source": "news"},
                            track_opens=track, track_clicks=track)
    report = send_campaign(store, make_template(tmp_path / f"t-{campaign}", html=HTML), tmp_path / f"{campaign}.csv",
                           s, clock=lambda: NOW)
    assert report.counts["sent"] == rows.count("\n")
    return [r.data for r in sink.received]


def hrefs(body: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]*)"', body)]


@pytest.fixture
def web(store, database):
    clock = Clock(NOW + timedelta(hours=1))
    config = dataclasses.replace(load(environ={"POSTWATCH_WEB__SECRET": UNSUB_KEY}), database=database,
                                 tracking=TrackingConfig(trusted_proxies=("127.0.0.1/32",)))
    from dashboard.server import create_server

    with serve(create_server(config, sessions=store, pages=False, clock=clock)) as client:
        client.clock = clock
        yield client


def hit(web, url: str, *, ip: str = "93.184.216.34", agent: str | None = FIREFOX, method: str = "GET"):
    assert url.startswith(BASE + "/t/")
    headers = {"X-Forwarded-For": ip}
    if agent is not None:
        headers["User-Agent"] = agent
    return web.call(method, url[len(BASE):], headers=headers)


def events(store):
    with store() as s:
        return list(s.scalars(select(EngagementEvent).order_by(EngagementEvent.id)))


# -- the composed message ---------------------------------------------------------------------

def test_a_tracked_message_has_the_pixel_and_its_links_rewritten_and_nothing_else(tmp_path, store, sink):
    [raw] = send(tmp_path, store, sink)
    body = html_part(raw)
    with store() as s:
        send_id = s.scalar(select(SendLog.id))
        tracked = s.scalar(select(TrackedCampaign))
    token = make_token(send_id, UNSUB_KEY, purpose="track")
    links = hrefs(body)
    assert links[:3] == [f"{BASE}/t/c/{token}/{i}" for i in range(3)]
    # mailto:, tel:, anchors and the unsubscribe link are never rewritten
    assert links[3:6] == ["mailto:help@example.com", "tel:+441234", "#top"]
    assert links[6].startswith(f"{BASE}/unsubscribe/")
    assert f'<img src="{BASE}/t/o/{token}" width="1" height="1"' in body
    assert body.index("/t/o/") < body.index("</body>")
    # the campaign's link list is stored with the UTM tags the sender added, in template order
    assert tracked.links == ["https://shop.example.com/new?a=1&b=2&utm_source=news&utm_campaign=spring",
                             "https://shop.example.com/sale?utm_source=news&utm_campaign=spring",
                             "https://blog.example.com/post?utm_source=news&utm_campaign=spring"]
    assert (tracked.opens, tracked.clicks) == (True, True)
    # the text part is left as it is
    assert "/t/" not in text_part(raw) and "https://shop.example.com/new?utm_source=news" in text_part(raw)


def test_an_untracked_campaign_gets_no_pixel_and_no_rewritten_link(tmp_path, store, sink):
    [raw] = send(tmp_path, store, sink, track=False)
    body = html_part(raw)
    assert "/t/" not in body and "<img" not in body
    assert hrefs(body)[0] == "https://shop.example.com/new?a=1&b=2&utm_source=news&utm_campaign=spring"
    with store() as s:
        assert s.scalar(select(func.count()).select_from(TrackedCampaign)) == 0


def test_tracking_follows_the_configuration_unless_the_send_option_says_otherwise():
    base = load(environ={})
    listed = dataclasses.replace(base, tracking=TrackingConfig(campaigns=("spring",), clicks=False))
    assert (Settings.from_config(listed, "spring").track_opens, Settings.from_config(listed, "spring").track_clicks) \
        == (True, False)
    assert Settings.from_config(listed, "autumn").track_opens is False
    assert Settings.from_config(listed, "spring", track=False).track_opens is False
    assert Settings.from_config(base, "autumn", track=True).track_clicks is True
    assert Settings.from_config(base, "autumn").tracking() is None  # off by default


# -- the endpoints ------------------------------------------------------------------------------

def urls(raw: bytes) -> tuple[str, list[str]]:
    body = html_part(raw)
    pixel = html.unescape(re.search(r'<img src="([^"]+)"', body).group(1))
    return pixel, [u for u in hrefs(body) if "/t/c/" in u]


def test_an_open_answers_a_gif_and_an_apple_proxy_open_is_kept_apart(tmp_path, store, sink, web):
    [raw] = send(tmp_path, store, sink)
    pixel, _ = urls(raw)
    human = hit(web, pixel)
    assert human.status == 200 and human.headers["Content-Type"] == "image/gif" and human.body[:6] == b"GIF89a"
    assert "no-store" in human.headers["Cache-Control"]
    assert hit(web, pixel, ip="172.224.224.5", agent=MPP).status == 200
    assert hit(web, pixel, ip="66.249.84.1", agent="Mozilla/5.0 (via ggpht.com GoogleImageProxy)").status == 200
    rows = events(store)
    assert [(e.kind, e.machine, e.machine_reason, e.ip_class) for e in rows] == [
        ("open", False, None, "other"), ("open", True, "apple-mpp", "apple-mpp"),
        ("open", True, "google-image-proxy", "google-proxy")]
    assert (rows[0].recipient, rows[0].campaign, rows[0].recipient_domain, rows[0].method) == (
        "a@example.org", "spring", "example.org", "GET")
    assert rows[0].occurred_at.replace(tzinfo=timezone.utc) == web.clock.now


def test_a_scanner_click_is_flagged_and_a_later_human_click_is_not(tmp_path, store, sink, web):
    [raw] = send(tmp_path, store, sink)
    _, links = urls(raw)
    web.clock.now = NOW + timedelta(seconds=2)  # a security gateway follows the link on delivery
    scanner = hit(web, links[1], ip="198.51.100.7")
    assert scanner.status == 302
    assert scanner.headers["Location"] == "https://shop.example.com/sale?utm_source=news&utm_campaign=spring"
    web.clock.now = NOW + timedelta(minutes=5)
    assert hit(web, links[1], method="HEAD").status == 302
    assert hit(web, links[1], agent="Mozilla/5.0 (compatible; Barracuda Sentinel)").status == 302
    web.clock.now = NOW + timedelta(hours=3)  # the reader, hours later
    human = hit(web, links[1])
    assert human.status == 302 and human.headers["Location"] == scanner.headers["Location"]
    assert [(e.kind, e.link_index, e.machine, e.machine_reason) for e in events(store)] == [
        ("click", 1, True, "after-delivery"), ("click", 1, True, "head-request"),
        ("click", 1, True, "scanner-agent"), ("click", 1, False, None)]


def test_every_link_clicked_at_once_is_a_scanner_and_all_its_clicks_are_marked(tmp_path, store, sink, web):
    [raw] = send(tmp_path, store, sink)
    _, links = urls(raw)
    start = NOW + timedelta(hours=2)  # long after delivery: only the burst tells
    for i, url in enumerate(links):
        web.clock.now = start + timedelta(seconds=i)
        assert hit(web, url).status == 302
    web.clock.now = start + timedelta(hours=1)
    assert hit(web, links[0]).status == 302
    assert [(e.link_index, e.machine, e.machine_reason) for e in events(store)] == [
        (0, True, "link-burst"), (1, True, "link-burst"), (2, True, "link-burst"), (0, False, None)]


def test_tampered_unknown_and_other_purpose_tokens_are_404_and_store_nothing(tmp_path, store, sink, web):
    [raw] = send(tmp_path, store, sink)
    pixel, links = urls(raw)
    token = pixel.rsplit("/", 1)[1]
    tampered = token[:-1] + ("a" if token[-1] != "a" else "b")
    with store() as s:
        send_id = s.scalar(select(SendLog.id))
    for path in (f"/t/o/{tampered}", f"/t/c/{tampered}/0",
                 f"/t/o/{make_token(send_id, UNSUB_KEY, purpose='unsubscribe')}",  # an unsubscribe token
                 f"/t/c/{make_token(send_id, 'another-key-0123456789', purpose='track')}/0",
                 f"/t/o/{make_token(send_id + 99, UNSUB_KEY, purpose='track')}",  # signed, but no such send
                 f"/t/c/{token}/3", f"/t/c/{token}/40000", f"/t/c/{token}/-1", f"/t/c/{token}/x",
                 f"/t/o/{'a' * 60}"):
        answer = web.get(path, headers={"User-Agent": FIREFOX})
        assert answer.status == 404, path
        assert "Location" not in answer.headers
    assert events(store) == []


def test_a_replayed_token_is_one_more_hit_and_never_redirects_elsewhere(tmp_path, store, sink, web):
    [raw] = send(tmp_path, store, sink)
    pixel, links = urls(raw)
    first = hit(web, links[0])
    again = hit(web, links[0] + "?url=https://evil.example/&next=https://evil.example/")
    assert first.status == again.status == 302
    assert first.headers["Location"] == again.headers["Location"] == \
        "https://shop.example.com/new?a=1&b=2&utm_source=news&utm_campaign=spring"
    assert hit(web, pixel).status == hit(web, pixel).status == 200
    assert [e.kind for e in events(store)] == ["click", "click", "open", "open"]


def test_a_link_outside_the_template_is_never_a_redirect_target(tmp_path, store, sink, web):
    [raw_a] = send(tmp_path, store, sink, campaign="spring")
    with store.begin() as s:  # another campaign, whose template has a link of its own
        s.add(TrackedCampaign(campaign="other", opens=True, clicks=True, links=["https://elsewhere.example/"],
                              created_at=NOW, updated_at=NOW))
    _, links = urls(raw_a)
    # a token of a spring send asks for index 0: it gets spring's link 0, whatever other campaigns hold
    assert hit(web, links[0]).headers["Location"].startswith("https://shop.example.com/new")
    token = links[0].split("/t/c/")[1].split("/")[0]
    assert web.get(f"/t/c/{token}/3").status == 404  # spring has three links: 0, 1, 2


def test_a_rerun_with_a_changed_template_keeps_the_old_indexes(tmp_path, store, sink):
    send(tmp_path, store, sink, rows="a@example.org,A\n")
    (tmp_path / "more.csv").write_text("email,name\nb@example.org,B\n")
    s = dataclasses.replace(settings(sink.address), utm={"utm_source": "news"}, track_opens=True, track_clicks=True)
    changed = HTML.replace('<a href="https://shop.example.com/sale">sale</a>', '<a href="https://new.example/x">x</a>')
    send_campaign(store, make_template(tmp_path / "t2", html=changed), tmp_path / "more.csv", s, clock=lambda: NOW)
    with store() as db:
        links = db.scalar(select(TrackedCampaign.links))
    assert links[1].startswith("https://shop.example.com/sale") and links[3].startswith("https://new.example/x")
    second = html_part(sink.received[-1].data)
    assert [h.rsplit("/", 1)[1] for h in hrefs(second) if "/t/c/" in h] == ["0", "3", "2"]
