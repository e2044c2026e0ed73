"""A digest sent through the sender to an aiosmtpd sink on 127.0.0.1, parsed back: DKIM verified
against a key in the loopback DNS server, figures equal to the store's; a dead smarthost is
retried, then raised as an alert; the scheduler runs a digest on its crontab line in its time zone."""
from __future__ import annotations

import email
import re
from dataclasses import replace
from datetime import datetime, timezone
from email import policy

import dkim
import pytest
from sqlalchemy import select

from analysis.digest.delivery import ALERT_RULE, DigestError, deliver, prepare, scheduled_jobs
from analysis.digest.schedule import Scope
from analysis import scheduler as scheduler_module
from analysis.jobs import JobContext, all_jobs
from analysis.scheduler import build_scheduler, run_scheduled
from postwatch.config import Config
from sender.config import SenderConfig
from store.alerts import Alert
from store.checks import JobRun
from tests.analysis.digest_history import BEFORE, NOW, WEEK, expected, fortnight_store
from tests.ingest.collectors.servers import free_port
from tests.sender.sink import Sink
from tests.sender.test_dkim import _dnsfunc, _publish

SCHEDULE = "weekly|0 8 * * MON|Europe/Paris|ops@example.com boss@example.com|"


@pytest.fixture(scope="module")
def fortnight(tmp_path_factory, database_factory):
    return fortnight_store(database_factory(tmp_path_factory.mktemp("digest-mail")))


@pytest.fixture
def sink(tmp_path):
    server = Sink(tmp_path / "tls")
    yield server
    server.stop()


def settings(smarthost: str, key_file: str = "", **reports) -> Config:
    base = Config()
    return replace(base, sender=SenderConfig(smarthost=smarthost, retry_backoff=0.0, retries=0, timeout=10.0,
                                             dkim_key_file=key_file, dkim_selector="s1"),
                   reports=replace(base.reports, mail_from="reports@send.example.com", schedules=(SCHEDULE,),
                                   retry_backoff=0.0, **reports))


def test_sent_digest_verifies_and_carries_the_store_figures(fortnight, sink, dns_server, tmp_path):
    _publish(dns_server, tmp_path)  # writes tmp_path/dkim.pem, publishes s1._domainkey.send.example.com
    config = settings(sink.address, str(tmp_path / "dkim.pem"))
    rendered = prepare(fortnight, config, "weekly", Scope(), NOW, timezone="Europe/Paris")
    assert rendered.digest.period == WEEK
    assert deliver(fortnight, config, rendered, ("ops@example.com", "boss@example.com"), now=NOW) == 2
    assert sorted(r for m in sink.received for r in m.rcpt_tos) == ["boss@example.com", "ops@example.com"]
    got = sink.received[0]
    assert got.tls and got.mail_from == "reports@send.example.com"
    assert dkim.verify(got.data, dnsfunc=_dnsfunc(dns_server))
    assert not dkim.verify(got.data.replace(b"Weekly digest", b"Weekly digesT", 1), dnsfunc=_dnsfunc(dns_server))
    msg = email.message_from_bytes(got.data, policy=policy.default)
    assert msg["From"] == "reports@send.example.com" and msg["Auto-Submitted"] == "auto-generated"
    want, was = expected(fortnight, WEEK), expected(fortnight, BEFORE)
    assert f"{want['sent']:,} sent" in msg["Subject"]
    html = msg.get_body(("html",)).get_content()
    figures = dict(re.findall(r'data-figure="([a-z_]+)">([^<]+)<', html))
    assert figures["sent"] == f"{want['sent']:,}"
    assert figures["complaints"] == f"{want['complaints']:,}"
    assert figures["complaint_rate"] == f"{want['complaints'] / want['sent_fbl'] * 100:.3f}%"
    assert figures["hard_bounce_rate"] == f"{want['hard'] / want['sent'] * 100:.2f}%"
    text = msg.get_body(("plain",)).get_content()
    assert re.search(rf"Sent\s+{want['sent']:,}\s+previous {was['sent']:,}", text)
    cids = set(re.findall(r'src="cid:([^"]+)"', html))
    related = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert cids and {p["Content-ID"].strip("<>") for p in related} == cids
    assert {p.get_filename() for p in msg.iter_attachments()} == {f"{c.name}.csv" for c in rendered.charts}


def test_a_dead_smarthost_is_retried_then_alerted_and_cleared_by_the_next_send(fortnight, sink):
    dead = f"127.0.0.1:{free_port()}"
    config = settings(dead, retries=3)
    rendered = prepare(fortnight, config, "weekly", Scope(), NOW)
    waits: list[float] = []
    config = replace(config, reports=replace(config.reports, retry_backoff=5.0))
    with pytest.raises(DigestError, match=r"could not be sent to 1 of 1 recipient\(s\) after 3 attempt"):
        deliver(fortnight, config, rendered, ("ops@example.com",), now=NOW, name="report.weekly", sleep=waits.append)
    assert waits == [5.0, 10.0]  # doubling back-off between the 3 attempts
    with fortnight() as s:
        alert = s.scalars(select(Alert).where(Alert.rule == ALERT_RULE, Alert.status == "open")).one()
    assert (alert.dimension, alert.key, alert.severity) == ("report", "report.weekly", "warning")
    assert "cannot connect" in alert.message and "ops@example.com" in alert.message
    ok = settings(sink.address)
    deliver(fortnight, ok, rendered, ("ops@example.com",), now=NOW, name="report.weekly")
    with fortnight() as s:
        assert s.get(Alert, alert.id).status == "resolved"


def test_the_scheduler_runs_a_digest_on_its_line_in_its_time_zone_and_records_it(fortnight, sink, monkeypatch):
    monkeypatch.setattr(scheduler_module, "_context", None)  # build_scheduler sets it; put it back after
    config = settings(sink.address)
    ctx = JobContext(sessions=fortnight, settings=config, clock=lambda: NOW)
    [job] = scheduled_jobs(config)
    assert (job.name, job.cron, job.timezone, job.in_analyze) == ("report.weekly", "0 8 * * MON", "Europe/Paris",
                                                                   False)
    scheduler, names = build_scheduler(ctx, fortnight.kw["bind"], config.scheduler, now=NOW)
    assert "report.weekly" in names
    stored = {j.id: j for j in scheduler.get_jobs()}
    trigger = stored["report.weekly"].trigger
    sunday = datetime(2026, 6, 14, 12, 0, tzinfo=timezone.utc)
    fire = trigger.get_next_fire_time(None, sunday)
    assert fire.astimezone(timezone.utc) == datetime(2026, 6, 15, 6, 0, tzinfo=timezone.utc)  # 08:00 CEST
    winter = trigger.get_next_fire_time(None, datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc))
    assert winter.astimezone(timezone.utc) == datetime(2026, 12, 7, 7, 0, tzinfo=timezone.utc)  # 08:00 CET
    # every other job runs once at the start; a digest sends mail, so only on its line
    assert stored["rollups"].next_run_time == NOW
    assert getattr(stored["report.weekly"], "next_run_time", None) is None
    run_scheduled("report.weekly")  # what APScheduler calls when the line fires
    assert sorted(r for m in sink.received for r in m.rcpt_tos) == ["boss@example.com", "ops@example.com"]
    with fortnight() as s:
        runs = s.scalars(select(JobRun).where(JobRun.job == "report.weekly")).all()
    assert [(r.trigger, r.rows, r.error) for r in runs] == [("scheduler", 2, None)]
    # `postwatch analyze` runs the jobs that are in_analyze: never a digest
    assert [j.name for j in all_jobs(config) if not j.in_analyze] == ["provider_feeds", "report.weekly"]
