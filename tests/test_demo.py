"""`postwatch demo`: a short history through the real pipeline, its episodes visible in the
rollups, scores, suppressions and alerts, and a second run that adds nothing."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import ROOT

END = date(2026, 3, 15)
DAYS = 14


@pytest.fixture(scope="module")
def demo(tmp_path_factory, database_factory):
    """One 14-day demo into a fresh store, shared by the tests of this module (it takes seconds)."""
    from postwatch.demo.runner import run_demo
    from postwatch.config import load
    from store.engine import session_factory, upgrade

    folder = tmp_path_factory.mktemp("demo")
    config = load(environ={"POSTWATCH_DATABASE__URL": database_factory(folder).url,
                           "POSTWATCH_PROVIDERS__MX_LOOKUPS": "false"})
    upgrade(config.database)
    sessions = session_factory(config.database)
    result = run_demo(sessions, config, days=DAYS, seed=3, end=END)
    return sessions, config, result


def _rollup(sessions, dimension, key, metric, day):
    from store.rollups import Rollup

    with sessions() as s:
        return s.scalar(select(func.coalesce(func.sum(Rollup.value), 0)).where(
            Rollup.dimension == dimension, Rollup.key == key, Rollup.metric == metric, Rollup.day == day))


def test_the_pipeline_stored_raw_messages_of_every_kind(demo):
    from store.models import BounceEvent, ComplaintEvent, DmarcAggregateReport, InboundMessage, TlsReport

    sessions, _config, result = demo
    assert result.failed_jobs == []
    with sessions() as s:
        kinds = dict(s.execute(select(InboundMessage.kind, func.count()).group_by(InboundMessage.kind)).all())
        statuses = set(s.scalars(select(InboundMessage.status).distinct()))
        sources = set(s.scalars(select(InboundMessage.source).distinct()))
        raw_kept = s.scalar(select(func.count()).where(InboundMessage.raw_zlib.is_not(None)))
        bounces = s.scalar(select(func.count()).select_from(BounceEvent))
        attributed = s.scalar(select(func.count()).where(BounceEvent.from_domain.is_not(None),
                                                         BounceEvent.campaign.is_not(None)))
        complaints = s.scalar(select(func.count()).select_from(ComplaintEvent))
        dmarc = s.scalar(select(func.count()).select_from(DmarcAggregateReport))
        tls = s.scalar(select(func.count()).select_from(TlsReport))
    assert set(kinds) == {"bounce", "complaint", "dmarc_aggregate", "smtp_tls"}
    assert statuses == {"parsed"}  # every generated message is read: nothing quarantined
    assert sources == {"demo"}
    assert raw_kept == sum(kinds.values()) == result.messages
    assert bounces == kinds["bounce"] and attributed == bounces  # each DSN names its From domain and campaign
    assert complaints == kinds["complaint"] > 0
    # reports about day N arrive on day N+1: 13 days of reports, 3 reporters x 2 domains / 2 x 2 (TLS)
    assert dmarc == (DAYS - 1) * 3 * 2
    assert tls == (DAYS - 1) * 2 * 2


def test_the_microsoft_block_shows_in_the_rollups_on_its_days(demo):
    sessions, _config, result = demo
    first, last = result.episodes["block"]
    before = first - timedelta(days=1)
    blocked = {d: _rollup(sessions, "provider", "microsoft", "bounced.reputation", d)
               for d in (first + timedelta(days=i) for i in range((last - first).days + 1))}
    assert all(n > 0 for n in blocked.values())
    assert _rollup(sessions, "provider", "microsoft", "bounced.reputation", before) == 0
    assert _rollup(sessions, "provider", "microsoft", "reason.blocked", first) > 0
    for provider in ("google", "yahoo", "apple"):  # the block is Microsoft's alone
        assert _rollup(sessions, "provider", provider, "bounced.reputation", first) == 0
    from store.alerts import Alert

    with sessions() as s:
        spike = s.scalars(select(Alert).where(Alert.rule == "block_spike", Alert.key == "microsoft")).all()
    assert spike and spike[0].opened_at.date() >= first


def test_the_complaint_spike_is_on_its_campaign(demo):
    from store.alerts import Alert
    from store.rollups import Score

    sessions, _config, result = demo
    first, _last = result.episodes["spike"]
    spike = _rollup(sessions, "campaign", "flash-sale", "complaints", first)
    sent = _rollup(sessions, "campaign", "flash-sale", "sent", first)
    assert sent > 0 and spike / sent >= 0.003  # over Gmail's and Yahoo's 0.3 % line
    receipts = _rollup(sessions, "campaign", "receipts", "complaints", first)
    receipts_sent = _rollup(sessions, "campaign", "receipts", "sent", first)
    assert receipts / receipts_sent < 0.001
    with sessions() as s:
        alert = s.scalars(select(Alert).where(Alert.rule == "complaint_rate", Alert.dimension == "campaign",
                                              Alert.key == "flash-sale")).first()
        score = s.scalars(select(Score).where(Score.dimension == "campaign", Score.key == "flash-sale",
                                              Score.day == first)).one()
    assert alert is not None and alert.severity == "critical"
    assert score.grade == "critical"


def test_the_spoofing_source_is_classified_unknown_and_alerted(demo):
    from postwatch.demo.scenario import SPOOF_IP
    from store.alerts import Alert
    from store.dmarc_sources import DmarcSource

    sessions, _config, _result = demo
    with sessions() as s:
        classes = {(r.domain, r.source_ip): r.source_class for r in s.scalars(select(DmarcSource))}
        alert = s.scalars(select(Alert).where(Alert.rule == "dmarc_new_source", Alert.status == "open")).all()
    assert classes[("news.example.com", SPOOF_IP)] == "unknown"
    assert classes[("news.example.com", "192.0.2.10")] == "authorised"
    assert [a.key for a in alert] == [f"news.example.com {SPOOF_IP}"]


def test_the_listing_suppressions_and_volume(demo):
    from analysis.blocklists import listed
    from postwatch.demo.scenario import LISTED_IP
    from store.checks import BlocklistCheck
    from store.suppressions import Suppression

    sessions, _config, result = demo
    first, last = result.episodes["listing"]
    with sessions() as s:
        assert listed(s, first) == {("sending_ip", LISTED_IP): ["bl.spamcop.net"]}
        assert listed(s, last + timedelta(days=1)) == {}
        # the stand-in resolver answers every zone's test entry: the other results are clean, not unknown
        assert set(s.scalars(select(BlocklistCheck.status).distinct())) == {"listed", "clean"}
        reasons = dict(s.execute(select(Suppression.reason, func.count()).group_by(Suppression.reason)).all())
    assert reasons.get("userunknown", 0) > 0 and reasons.get("abuse", 0) > 0
    assert "blocked" not in reasons  # a reputation block never suppresses the recipient
    assert _rollup(sessions, "all", "", "sent", END) > 1000
    assert result.sent > 0


def test_running_again_adds_nothing(demo):
    from postwatch.demo.runner import run_demo
    from store.alerts import Alert
    from store.models import BounceEvent, InboundMessage
    from store.rollups import Rollup

    sessions, config, first = demo

    def counts():
        with sessions() as s:
            return [s.scalar(select(func.count()).select_from(t)) for t in (InboundMessage, BounceEvent, Alert)] + [
                s.scalar(select(func.sum(Rollup.value)))]

    before = counts()
    again = run_demo(sessions, config, days=DAYS, seed=3, end=END)
    assert again.messages == 0 and again.duplicates == first.messages and again.days_played == 0
    assert counts() == before


def test_postwatch_demo_command_writes_a_login_once(tmp_path):
    env = {**os.environ, "POSTWATCH_PROVIDERS__MX_LOOKUPS": "false"}
    env = {k: v for k, v in env.items() if not k.startswith("POSTWATCH_") or k == "POSTWATCH_PROVIDERS__MX_LOOKUPS"}
    cmd = [str(ROOT / ".venv" / "bin" / "postwatch") if (ROOT / ".venv" / "bin" / "postwatch").exists()
           else sys.executable, "demo", "--days", "3", "--end", "2026-03-15"]
    if cmd[0] == sys.executable:
        cmd[1:1] = ["-m", "postwatch.cli"]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    login = (tmp_path / "var" / "demo-login").read_text().split()
    assert login[0] == "demo" and f"log in as demo / {login[1]}" in run.stdout
    assert oct((tmp_path / "var" / "demo-login").stat().st_mode & 0o777) == "0o600"
    toml = (tmp_path / "postwatch.toml").read_text()
    assert 'users = ["demo:editor:scrypt:' in toml and login[1] not in toml

    from dashboard.auth import check_password
    from postwatch.config import load

    config = load(tmp_path / "postwatch.toml", environ={})
    assert config.web.secret and check_password(config.web.accounts()["demo"], login[1])
    again = subprocess.run(cmd + ["--if-empty"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0 and "not played again" in again.stdout
    assert (tmp_path / "postwatch.toml").read_text() == toml
