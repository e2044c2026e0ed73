"""Sunset of the disengaged on a real store: who is judged (tracked sends only), what counts
(human opens and clicks, not proxies and scanners), reversal, the job, the sender skipping the
sunset and the Suppressions page counting them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from analysis.config import SunsetConfig
from analysis.sunset import count, judge, run
from store.engagement import EngagementEvent, TrackedCampaign
from store.suppressions import SUNSET, Suppression, changes_since, remove_suppression
from store.volume import SendLog
from tests.sender.helpers import make_template, settings, sink  # noqa: F401

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
ON = SunsetConfig(enabled=True, sends=3, days=180)
DAY = timedelta(days=1)


def tracked(s, campaign: str, since: datetime) -> None:
    s.add(TrackedCampaign(campaign=campaign, opens=True, clicks=True, links=[], created_at=since, updated_at=since))


def sent(s, who: str, campaign: str, at: datetime, result: str = "sent") -> int:
    row = SendLog(sent_at=at, recipient=who, recipient_domain=who.split("@")[1], campaign=campaign, result=result)
    s.add(row)
    s.flush()
    return row.id


def hit(s, send_id: int, who: str, at: datetime, *, kind: str = "open", machine: bool = False) -> None:
    s.add(EngagementEvent(send_id=send_id, kind=kind, occurred_at=at, recipient=who, campaign="c", method="GET",
                          machine=machine, machine_reason="apple-mpp" if machine else None))


@pytest.fixture
def history(store):
    """Campaigns w1..w4 tracked since 60 days ago, `plain` never tracked, `late` tracked only from
    its second run; one recipient per case."""
    with store.begin() as s:
        for i in range(1, 5):
            tracked(s, f"w{i}", NOW - 60 * DAY)
        tracked(s, "late", NOW - 5 * DAY)
        tracked(s, "old", NOW - 400 * DAY)
        weeks = [NOW - (40 - 10 * i) * DAY for i in range(4)]  # 40, 30, 20, 10 days ago
        for i, at in enumerate(weeks, start=1):
            for who in ("reader@example.org", "proxy@example.org", "clicker@example.org", "lapsed@example.org"):
                sid = sent(s, who, f"w{i}", at)
                if who == "proxy@example.org":  # Apple's proxy opens everything: not a reader
                    hit(s, sid, who, at + timedelta(minutes=1), machine=True)
                if who == "reader@example.org" and i == 4:
                    hit(s, sid, who, at + timedelta(hours=3))
                if who == "clicker@example.org" and i == 1:  # clicked, but before the last 3 sends
                    hit(s, sid, who, at + timedelta(hours=1), kind="click")
                if who == "lapsed@example.org" and i == 1:  # opened the oldest of 4: not in the last 3 ...
                    hit(s, sid, who, at + timedelta(hours=1))
                if who == "lapsed@example.org" and i == 4:  # ... and a link scanner is not a reader
                    hit(s, sid, who, at + timedelta(seconds=2), kind="click", machine=True)
        for i in range(5):  # never tracked: nothing could be seen, nothing is judged
            sent(s, "untracked@example.org", "plain", NOW - (50 - i) * DAY)
        sent(s, "new@example.org", "w1", NOW - 40 * DAY)  # two tracked sends only, recent
        sent(s, "new@example.org", "w2", NOW - 30 * DAY)
        for at in (NOW - 30 * DAY, NOW - 20 * DAY):  # sent before `late` was tracked: not counted
            sent(s, "before@example.org", "late", at)
        sent(s, "before@example.org", "late", NOW - 2 * DAY)
        sent(s, "bounced@example.org", "w1", NOW - 40 * DAY, result="bounced")
        sent(s, "bounced@example.org", "w2", NOW - 30 * DAY, result="bounced")
        sent(s, "bounced@example.org", "w3", NOW - 20 * DAY, result="bounced")
        sent(s, "quiet@example.org", "old", NOW - 200 * DAY)  # one tracked message, 200 days ago, no reply
        sid = sent(s, "oldfan@example.org", "old", NOW - 200 * DAY)
        hit(s, sid, "oldfan@example.org", NOW - 190 * DAY)  # a reader once, nothing in the last 180 days
        sid = sent(s, "recentfan@example.org", "old", NOW - 200 * DAY)
        hit(s, sid, "recentfan@example.org", NOW - 100 * DAY)
    return store


def test_who_is_sunset_and_why(history):
    with history() as s:
        verdicts = {v.address: v for v in judge(s, ON, NOW)}
    assert sorted(verdicts) == ["clicker@example.org", "lapsed@example.org", "oldfan@example.org",
                                "proxy@example.org", "quiet@example.org"]
    assert (verdicts["proxy@example.org"].rule, verdicts["proxy@example.org"].tracked_sends) == ("sends", 4)
    assert verdicts["proxy@example.org"].last_human is None  # machine opens are not counted
    assert verdicts["proxy@example.org"].since == NOW - 30 * DAY  # the third newest tracked send
    assert verdicts["clicker@example.org"].last_human is not None
    assert (verdicts["quiet@example.org"].rule, verdicts["oldfan@example.org"].rule) == ("days", "days")
    with history() as s:
        only_days = {v.address for v in judge(s, SunsetConfig(enabled=True, sends=0, days=180), NOW)}
        only_sends = {v.address for v in judge(s, SunsetConfig(enabled=True, sends=3, days=0), NOW)}
    assert only_days == {"quiet@example.org", "oldfan@example.org"}
    assert only_sends == {"clicker@example.org", "lapsed@example.org", "proxy@example.org"}


def test_off_by_default_then_suppressed_once_counted_and_in_the_feed(history):
    assert SunsetConfig().enabled is False
    assert run(history, SunsetConfig(), NOW) == 0
    assert run(history, ON, NOW) == 5
    assert run(history, ON, NOW + DAY) == 0  # idempotent
    with history() as s:
        assert count(s, NOW) == 5
        rows = s.scalars(select(Suppression).where(Suppression.scope == SUNSET)).all()
        assert {(r.source, r.reason, r.expires_at) for r in rows} == {("sunset", "sunset", None)}
        proxy = next(r for r in rows if r.address == "proxy@example.org")
        assert proxy.details == {"rule": "sends", "tracked_sends": 4, "last_human": None,
                                 "since": (NOW - 30 * DAY).isoformat()}
        changes = changes_since(s, 0)[0]
    assert {(c["op"], c["scope"], c["reason"]) for c in changes} == {("add", "sunset", "sunset")}
    assert len(changes) == 5


def test_removal_gives_a_fresh_start(history):
    run(history, ON, NOW)
    with history.begin() as s:
        assert remove_suppression(s, "proxy@example.org", reason="asked to stay", now=NOW, scope="sunset")
    assert run(history, ON, NOW + DAY) == 0  # not sunset again for what came before the removal
    with history.begin() as s:
        for i in (1, 2):
            sent(s, "proxy@example.org", "w1", NOW + i * DAY)
    assert run(history, ON, NOW + 3 * DAY) == 0  # two new tracked sends: not enough yet
    with history.begin() as s:
        sent(s, "proxy@example.org", "w1", NOW + 3 * DAY)
    assert run(history, ON, NOW + 4 * DAY) == 1
    with history() as s:
        assert count(s, NOW + 4 * DAY) == 5


def test_the_job_is_scheduled_and_reads_its_section(history):
    from analysis.jobs import JobContext, all_jobs

    job = next(j for j in all_jobs() if j.name == "sunset")
    assert job.every == timedelta(days=1)
    assert job.run(JobContext(history, SimpleNamespace(sunset=SunsetConfig()), lambda: NOW)) == 0
    assert job.run(JobContext(history, SimpleNamespace(sunset=ON), lambda: NOW)) == 5


def test_the_sender_skips_the_sunset_and_mails_the_engaged(history, tmp_path, sink):
    from sender.campaign import send_campaign

    run(history, ON, NOW)
    (tmp_path / "r.csv").write_text("email,name\nreader@example.org,R\nproxy@example.org,P\nquiet@example.org,Q\n"
                                    "untracked@example.org,U\n")
    report = send_campaign(history, make_template(tmp_path / "t"), tmp_path / "r.csv", settings(sink.address,
                           campaign="summer"), clock=lambda: NOW)
    assert report.aborted is None and not report.errors
    assert (report.counts["sent"], report.counts["suppressed"]) == (2, 2)
    assert sorted(r.rcpt_tos[0] for r in sink.received) == ["reader@example.org", "untracked@example.org"]
    with history() as s:
        replies = dict(s.execute(select(SendLog.recipient, SendLog.reply).where(SendLog.campaign == "summer",
                                                                               SendLog.result == "suppressed")).all())
    assert replies == {"proxy@example.org": "suppressed in scope sunset", "quiet@example.org": "suppressed in scope sunset"}


def test_the_suppressions_page_counts_the_sunset(history, database_factory, tmp_path):
    import json

    import flask

    from dashboard.app import create_dash
    from dashboard.pages import suppressions
    from postwatch.config import Config

    run(history, ON, NOW)
    server = flask.Flask("test")
    server.secret_key = "test-secret"
    app = create_dash(server, Config(database=database_factory(tmp_path / "unused")), clock=lambda: NOW,
                      sessions=history)
    _growth, counted = suppressions.update(app.postwatch, "")
    text = json.dumps(counted, cls=__import__("plotly").utils.PlotlyJSONEncoder)
    assert '"5"' in text and '"id": "su-sunset"' in text and "of them sunset" in text
