"""A backlog judged as it happened: 45 days of a sender's feedback (an Outlook block, an
expired certificate, a complaint spike) read in at once — as a new install reading months of
reports from a mailbox does — and then one run of the analysis jobs. Each episode's alert
opens dated within its episode, and closes; nothing waits for a day that is already over."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import select

END = date(2026, 5, 20)
DAYS = 45


@pytest.fixture(scope="module")
def backlog(tmp_path_factory, database_factory):
    from postwatch.demo.runner import demo_domains
    from postwatch.demo.scenario import Scenario
    from analysis.jobs import JobContext
    from analysis.rollups import resolver_from
    from analysis.scheduler import run_all
    from analysis.volume import import_csv
    from ingest.envelope import Envelope
    from ingest.pipeline import Pipeline
    from postwatch.config import load
    from store.engine import session_factory, upgrade

    folder = tmp_path_factory.mktemp("backlog")
    config = load(environ={"POSTWATCH_DATABASE__URL": database_factory(folder).url,
                           "POSTWATCH_PROVIDERS__MX_LOOKUPS": "false"})
    upgrade(config.database)
    sessions = session_factory(config.database)
    start = END - timedelta(days=DAYS - 1)
    now = datetime.combine(END + timedelta(days=1), time(9), timezone.utc)  # the morning after
    scenario = Scenario(start, DAYS + 1, seed=5)
    days = [scenario.plan_day(start + timedelta(days=i), now) for i in range(DAYS + 1)]
    pipeline = Pipeline(sessions, config.ingest, clock=lambda: now, domains=demo_domains(config))
    items = [(raw, Envelope("imap")) for d in days for _, raw in d.messages]
    outcomes = list(pipeline.ingest_many(items, workers=1))
    providers = resolver_from(config)
    with sessions.begin() as s:
        for d in days:
            import_csv(s, d.volume_csv(), providers=providers, now=now, source="backlog")
    # one run of the jobs, the next morning, as `postwatch analyze` (no blocklist look-ups: offline)
    results = run_all(JobContext(sessions, config, lambda: now), only=["rollups", "dmarc_sources", "scores",
                                                                     "alerts"])
    return sessions, scenario.timeline.episodes(), outcomes, results


def _alerts(sessions, rule):
    from store.alerts import Alert

    with sessions() as s:
        return s.scalars(select(Alert).where(Alert.rule == rule).order_by(Alert.opened_at)).all()


def _within(alert, episode, slack=1):
    first, last = episode
    return first <= alert.opened_at.date() <= first + timedelta(days=slack)


def test_everything_was_read_and_every_job_ran(backlog):
    _sessions, _episodes, outcomes, results = backlog
    assert outcomes and all(o.status == "parsed" for o in outcomes)
    assert [r.error for r in results] == [None] * len(results)


def test_the_outlook_block_opens_on_its_first_day_on_the_provider_and_the_ip(backlog):
    sessions, episodes, _outcomes, _results = backlog
    alerts = [a for a in _alerts(sessions, "block_rate") if a.severity == "critical"]
    keys = {(a.dimension, a.key) for a in alerts if _within(a, episodes["block"])}
    assert ("provider", "microsoft") in keys
    assert any(dim == "sending_ip" for dim, _ in keys)
    # and it ended: resolved after the episode's last day, dated then, not this morning
    microsoft = next(a for a in alerts if a.key == "microsoft")
    assert microsoft.status == "resolved" and microsoft.resolved_at.date() <= episodes["block"][1] + timedelta(days=2)


def test_the_expired_certificate_opens_a_tls_alert_naming_it(backlog):
    sessions, episodes, _outcomes, _results = backlog
    alerts = [a for a in _alerts(sessions, "tls_failure_rate") if a.dimension == "sending_domain"]
    assert alerts and _within(alerts[0], episodes["tls_outage"])
    assert "certificate-expired" in alerts[0].message and alerts[0].severity == "critical"


def test_the_complaint_spike_opens_on_its_campaign(backlog):
    sessions, episodes, _outcomes, _results = backlog
    alerts = [a for a in _alerts(sessions, "complaint_rate") if (a.dimension, a.key) == ("campaign", "flash-sale")]
    assert alerts and _within(alerts[0], episodes["spike"], slack=0) and alerts[0].severity == "critical"


def test_no_critical_alert_outside_the_episodes(backlog):
    from store.alerts import Alert

    sessions, episodes, _outcomes, _results = backlog
    spans = [(first, last + timedelta(days=1)) for first, last in episodes.values()]
    with sessions() as s:
        critical = s.scalars(select(Alert).where(Alert.severity == "critical")).all()
    outside = [(a.rule, a.dimension, a.key, a.opened_at.date()) for a in critical
               if not any(first <= a.opened_at.date() <= last for first, last in spans)]
    assert outside == []
