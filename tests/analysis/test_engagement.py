"""Open and click rates, human and all, on a real store; the score's explanation and the
Engagement page read them."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from analysis.engagement import rates, trend
from analysis.scores import ScoresConfig, compute
from store.engagement import CLICK, OPEN, EngagementEvent, TrackedCampaign
from store.volume import SendLog

DAY = date(2026, 5, 20)
T = datetime(2026, 5, 20, 8, 0, tzinfo=timezone.utc)


def _send(s, n: int, campaign: str, provider: str, at: datetime = T, result: str = "sent") -> list[int]:
    rows = [SendLog(sent_at=at, recipient=f"r{campaign}{provider}{i}{at.day}@example.net", provider=provider,
                    campaign=campaign, sending_domain="news.example", result=result) for i in range(n)]
    s.add_all(rows)
    s.flush()
    return [r.id for r in rows]


def _hit(s, send_id: int, kind: str, machine: bool = False, at: datetime = T + timedelta(hours=2)) -> None:
    s.add(EngagementEvent(send_id=send_id, kind=kind, occurred_at=at, method="GET", machine=machine,
                          machine_reason="apple-mpp" if machine else None, link_index=0 if kind == CLICK else None))


@pytest.fixture
def tracked(store):
    with store.begin() as s:
        s.add(TrackedCampaign(campaign="spring", opens=True, clicks=True, links=["https://x.example/"],
                              created_at=T - timedelta(days=30), updated_at=T))
        gmail = _send(s, 10, "spring", "google")
        apple = _send(s, 10, "spring", "apple")
        _send(s, 2, "spring", "google", result="bounced")  # not delivered: not in the denominator
        plain = _send(s, 50, "plain", "google")  # an untracked campaign: no rates
        for i in gmail[:4]:  # 4 of 10 opened by a person, one of them twice
            _hit(s, i, OPEN)
        _hit(s, gmail[0], OPEN)
        _hit(s, gmail[0], CLICK)
        for i in apple:  # Apple's proxy fetches every pixel; one person clicked
            _hit(s, i, OPEN, machine=True)
        _hit(s, apple[1], CLICK)
        _hit(s, apple[2], CLICK, machine=True)
        _hit(s, plain[0], OPEN)
    return store


def test_rates_by_day_campaign_and_provider_human_and_all(tracked):
    with tracked() as s:
        rows = {r.provider: r for r in rates(s, DAY, DAY)}
    assert set(rows) == {"apple", "google"}  # the untracked campaign is left out
    g, a = rows["google"], rows["apple"]
    assert (g.day, g.campaign, g.sent) == (DAY, "spring", 10)
    assert (g.opened_human, g.opened_all, g.opens_human, g.clicked_human) == (4, 4, 5, 1)
    assert (g.rate("open_human"), g.rate("click_all")) == (0.4, 0.1)
    assert (a.opened_human, a.opened_all, a.clicked_human, a.clicked_all) == (0, 10, 1, 2)
    assert (a.rate("open_human"), a.rate("open_all"), a.rate("click_human")) == (0.0, 1.0, 0.1)


def test_coarser_rows_are_sums_and_a_filter_narrows_the_sends(tracked):
    with tracked() as s:
        [total] = rates(s, DAY, DAY, by=())
        [google] = rates(s, DAY, DAY, by=("campaign",), where=[SendLog.provider == "google"])
    assert (total.sent, total.opened_human, total.opened_all, total.clicked_human) == (20, 4, 14, 2)
    assert (google.campaign, google.sent, google.opened_all) == ("spring", 10, 4)


def test_the_trend_compares_two_windows_and_joins_the_score_explanation(tracked):
    with tracked.begin() as s:  # the week before: 10 sends to google, 8 opened by people
        earlier = _send(s, 10, "spring", "google", at=T - timedelta(days=7))
        for i in earlier[:8]:
            _hit(s, i, OPEN, at=T - timedelta(days=7, hours=-1))
    with tracked() as s:
        t = trend(s, DAY, "provider", "google")
        assert trend(s, DAY, "provider", "yahoo") is None
    assert t["current"]["open_human"] == 0.4 and t["previous"]["open_human"] == 0.8
    assert t["change"]["open_human"] == pytest.approx(-0.4)
    day = {DAY: {"sent": 1000}}
    score, _grade, components = compute(day, DAY, ScoresConfig(), engagement=t)
    assert components["engagement"]["current"]["open_human"] == 0.4
    assert compute(day, DAY, ScoresConfig())[0] == score  # it costs no points


def test_the_engagement_page_shows_human_and_all(tracked, database):
    import json

    import flask

    from dashboard.app import PAGES, DashContext, route
    from dashboard.pages import engagement
    from postwatch.config import Config

    ctx = DashContext(tracked, Config(database=database), lambda: T + timedelta(days=1))
    note, opens, clicks, campaigns, providers = engagement.update(ctx, "?start=2026-05-19&end=2026-05-21")
    lines = {t["name"]: dict(zip(t["x"], t["y"])) for t in opens["data"]}
    assert lines["human"]["2026-05-20"] == pytest.approx(0.2) and lines["all"]["2026-05-20"] == pytest.approx(0.7)
    by_provider = {r["provider"]: r for r in providers.data}
    assert (by_provider["apple"]["open_human"], by_provider["apple"]["open_all"]) == ("0.0 %", "100.0 %")
    assert [r["campaign"] for r in campaigns.data] == ["spring"]
    # a filter on the provider narrows every number
    _n, opens, _c, _camp, _prov = engagement.update(ctx, "?start=2026-05-19&end=2026-05-21&provider=google")
    assert {t["name"]: t["y"] for t in opens["data"]}["all"][0] == pytest.approx(0.4)
    assert engagement in PAGES
    with flask.Flask("test").test_request_context("/engagement"):
        _bar, page, _who = route(ctx, "/engagement", "")
    assert "en-opens" in json.dumps(page.to_plotly_json(), default=str)
