"""Alert rules on hand-built rollups with known answers: thresholds, spikes, anomalies, new DMARC
sources; de-duplication while open, resolution when the condition clears, stale alerts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from analysis.alerts import alerts_job, apply, evaluate
from analysis.jobs import JobContext
from analysis.config import AlertsConfig
from postwatch.config import Config
from store.alerts import Alert, raise_alert
from store.models import DmarcAggregateReport, DmarcRecord, InboundMessage
from store.rollups import Rollup

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
TODAY = NOW.date()
CFG = AlertsConfig()


def put(session, dimension, key, day, **metrics):
    for metric, value in metrics.items():
        metric = metric.replace("__", ".")
        row = session.scalars(select(Rollup).where(Rollup.day == day, Rollup.dimension == dimension,
                                                   Rollup.key == key, Rollup.metric == metric)).first()
        if row is None:
            session.add(Rollup(day=day, dimension=dimension, key=key, metric=metric, value=value))
        else:
            row.value = value
    session.flush()


def run(store, now=NOW, cfg=CFG):
    with store.begin() as s:
        return apply(s, evaluate(s, cfg, now.date()), now, cfg)


def open_alerts(store):
    with store() as s:
        return {(a.rule, a.dimension, a.key): a for a in s.scalars(select(Alert).where(Alert.status == "open"))}


def test_complaint_and_hard_bounce_lines(store):
    with store.begin() as s:
        put(s, "sending_domain", "crit.example", TODAY, sent=10_000, complaints=35, hard=600)
        put(s, "sending_domain", "warn.example", TODAY, sent=10_000, complaints=15, hard=250)
        put(s, "sending_domain", "fine.example", TODAY, sent=10_000, complaints=5, hard=150)
        put(s, "sending_domain", "tiny.example", TODAY, sent=50, complaints=5, hard=20)  # below min_volume
    counts = run(store)
    alerts = open_alerts(store)
    got = {(rule, key): a.severity for (rule, dim, key), a in alerts.items()}
    assert got == {("complaint_rate", "crit.example"): "critical", ("hard_bounce_rate", "crit.example"): "critical",
                   ("complaint_rate", "warn.example"): "warning", ("hard_bounce_rate", "warn.example"): "warning"}
    assert counts["opened"] == 4
    a = alerts[("complaint_rate", "sending_domain", "crit.example")]
    assert "0.35%" in a.message and "35 of 10000 sent" in a.message
    assert a.details["rate"] == pytest.approx(0.0035)


def test_an_open_alert_is_refreshed_not_repeated_and_resolves_when_clear(store):
    with store.begin() as s:
        put(s, "sending_ip", "192.0.2.10", TODAY, sent=10_000, complaints=20)
    assert run(store)["opened"] == 1
    second = run(store, NOW + timedelta(minutes=15))
    assert second["opened"] == 0 and second["resolved"] == 0
    [alert] = open_alerts(store).values()
    assert alert.times_seen == 2 and alert.severity == "warning"
    first_id = alert.id

    with store.begin() as s:  # worse: escalated in place
        put(s, "sending_ip", "192.0.2.10", TODAY, complaints=40)
    assert run(store, NOW + timedelta(minutes=30))["escalated"] == 1
    [alert] = open_alerts(store).values()
    assert (alert.id, alert.severity) == (first_id, "critical")

    with store.begin() as s:  # more mail, same complaints: under the line, resolved
        put(s, "sending_ip", "192.0.2.10", TODAY, sent=100_000)
    assert run(store, NOW + timedelta(minutes=45))["resolved"] == 1
    assert open_alerts(store) == {}
    with store() as s:
        resolved = s.get(Alert, first_id)
        assert resolved.status == "resolved" and resolved.resolved_at is not None


def test_no_data_keeps_an_alert_open_until_stale(store):
    with store.begin() as s:
        put(s, "campaign", "spring", TODAY, sent=1_000, complaints=5)
    run(store)
    # the next day brings no sends for the campaign: not judged, so still open ...
    assert run(store, NOW + timedelta(days=1))["resolved"] == 0
    assert ("complaint_rate", "campaign", "spring") in open_alerts(store)
    # ... until nothing has been seen of it for stale_hours
    assert run(store, NOW + timedelta(hours=CFG.stale_hours + 1))["resolved"] == 1
    assert open_alerts(store) == {}


def test_alerts_of_other_rules_are_left_alone(store):
    with store.begin() as s:
        raise_alert(s, rule="blocklist", dimension="sending_ip", key="192.0.2.1", severity="critical",
                    message="listed", now=NOW - timedelta(days=30))
        raise_alert(s, rule="mass_event_hold", dimension="provider", key="google", severity="warning",
                    message="held", now=NOW - timedelta(days=30))
    run(store)
    assert set(open_alerts(store)) == {("blocklist", "sending_ip", "192.0.2.1"),
                                       ("mass_event_hold", "provider", "google")}


def test_block_spike_at_one_provider(store):
    with store.begin() as s:
        for i in range(1, 15):
            day = TODAY - timedelta(days=i)
            put(s, "provider", "microsoft", day, bounced=100, bounced__reputation=5)
            put(s, "provider", "google", day, bounced=100, bounced__reputation=5)
            put(s, "provider", "yahoo", day, bounced=100, bounced__reputation=40)
        put(s, "provider", "microsoft", TODAY, bounced=100, bounced__reputation=60)  # 60% vs 5%
        put(s, "provider", "google", TODAY, bounced=20, bounced__reputation=12)  # share high, count < 20
        put(s, "provider", "yahoo", TODAY, bounced=100, bounced__reputation=55)  # 55% vs 40%: not a spike
    run(store)
    alerts = open_alerts(store)
    assert [k for k in alerts if k[0] == "block_spike"] == [("block_spike", "provider", "microsoft")]
    spike = alerts[("block_spike", "provider", "microsoft")]
    assert spike.severity == "critical"
    assert spike.details["baseline_share"] == pytest.approx(0.05)
    assert "60 of 100 bounces" in spike.message


def test_tls_failure_rate(store):
    with store.begin() as s:
        put(s, "all", "", TODAY, tls__ok=900, tls__failed=100)
    run(store)
    alert = open_alerts(store)[("tls_failure_rate", "all", "")]
    assert alert.severity == "warning" and "100 of 1000 sessions" in alert.message


def test_anomaly_against_the_trailing_baseline(store):
    with store.begin() as s:
        for i in range(1, 15):  # 1.8 % .. 2.2 % bounced
            put(s, "sending_domain", "news.example", TODAY - timedelta(days=i), sent=1_000,
                bounced=18 + i % 5, hard=2)
        put(s, "sending_domain", "news.example", TODAY, sent=1_000, bounced=60, hard=2)
        for i in range(1, 15):  # the same history, and a normal today
            put(s, "sending_domain", "calm.example", TODAY - timedelta(days=i), sent=1_000,
                bounced=18 + i % 5, hard=2)
        put(s, "sending_domain", "calm.example", TODAY, sent=1_000, bounced=22, hard=2)
        for i in range(1, 4):  # too little history to judge
            put(s, "sending_domain", "new.example", TODAY - timedelta(days=i), sent=1_000, bounced=1)
        put(s, "sending_domain", "new.example", TODAY, sent=1_000, bounced=90)
    run(store)
    anomalies = {k: a for k, a in open_alerts(store).items() if k[0].startswith("anomaly.")}
    assert list(anomalies) == [("anomaly.bounced", "sending_domain", "news.example")]
    a = anomalies[("anomaly.bounced", "sending_domain", "news.example")]
    assert a.details["baseline_days"] == 14 and a.details["count"] == 60
    assert a.details["baseline_mean"] == pytest.approx(0.02, abs=0.001)


def _dmarc(s, n, source_ip, begin, passed, domain="send.example.com"):
    msg = InboundMessage(sha256=f"{n:064d}", received_at=begin, source="file", size=1, kind="dmarc_aggregate",
                         status="parsed")
    s.add(msg)
    s.flush()
    report = DmarcAggregateReport(message_id=msg.id, org_name="google.com", report_id=f"r{n}", domain=domain,
                                  begin=begin, end=begin + timedelta(days=1), record_count=1, message_count=7)
    report.records.append(DmarcRecord(interval_begin=begin, interval_end=begin + timedelta(days=1),
                                      source_ip=source_ip, count=7, dkim_aligned=passed, spf_aligned=passed,
                                      dmarc_pass=passed, header_from=domain))
    s.add(report)


def test_dmarc_failures_from_a_new_source(store):
    with store.begin() as s:
        _dmarc(s, 1, "192.0.2.1", NOW - timedelta(days=40), True)  # our own, long known
        _dmarc(s, 2, "192.0.2.1", NOW - timedelta(days=1), True)
        _dmarc(s, 3, "198.51.100.7", NOW - timedelta(days=40), False)  # a known forwarder, failing for ages
        _dmarc(s, 4, "198.51.100.7", NOW - timedelta(days=1), False)
        _dmarc(s, 5, "203.0.113.66", NOW - timedelta(days=1), False)  # never seen before
    run(store)
    alerts = open_alerts(store)
    assert list(alerts) == [("dmarc_new_source", "dmarc_source", "send.example.com 203.0.113.66")]
    a = alerts[("dmarc_new_source", "dmarc_source", "send.example.com 203.0.113.66")]
    assert a.details["messages"] == 7 and "google.com" in a.message
    # a week later it is no longer new: resolved
    run(store, NOW + timedelta(days=CFG.new_source_days))
    assert open_alerts(store) == {}


def test_the_job_is_idempotent(store):
    with store.begin() as s:
        put(s, "all", "", TODAY, sent=1_000, complaints=9, hard=100)
    ctx = JobContext(sessions=store, settings=Config(), clock=lambda: NOW)
    assert alerts_job(ctx) == 2
    assert alerts_job(ctx) == 0


def test_noise_is_not_an_alert_too_few_complaints_say_nothing(store):
    with store.begin() as s:
        put(s, "campaign", "one", TODAY, sent=200, complaints=1)  # 0.5 %, one complaint
        put(s, "campaign", "two", TODAY, sent=150, complaints=2)  # 1.3 %, two complaints
        put(s, "campaign", "many", TODAY, sent=2_000, complaints=12)  # 0.6 % on 12: real
    run(store)
    assert {k[2]: a.severity for k, a in open_alerts(store).items() if k[0] == "complaint_rate"} == {
        "many": "critical"}


def test_too_few_to_say_leaves_an_open_alert_alone(store):
    with store.begin() as s:
        put(s, "campaign", "spring", TODAY, sent=10_000, complaints=40)
    run(store)
    with store.begin() as s:  # the next day: 1 complaint in 300, past the line on one event
        put(s, "campaign", "spring", TODAY + timedelta(days=1), sent=300, complaints=1)
    assert run(store, NOW + timedelta(days=1))["resolved"] == 0
    assert ("complaint_rate", "campaign", "spring") in open_alerts(store)


def test_a_block_spike_names_the_sending_ip_too(store):
    with store.begin() as s:
        for i in range(1, 15):
            put(s, "sending_ip", "192.0.2.11", TODAY - timedelta(days=i), bounced=50, bounced__reputation=2)
            put(s, "sending_ip", "192.0.2.10", TODAY - timedelta(days=i), bounced=50, bounced__reputation=2)
        put(s, "sending_ip", "192.0.2.11", TODAY, bounced=400, bounced__reputation=370)
        put(s, "sending_ip", "192.0.2.10", TODAY, bounced=50, bounced__reputation=3)
    run(store)
    spikes = {k: a for k, a in open_alerts(store).items() if k[0] == "block_spike"}
    assert list(spikes) == [("block_spike", "sending_ip", "192.0.2.11")]
    assert spikes[("block_spike", "sending_ip", "192.0.2.11")].severity == "critical"


def _tls_report(s, n, day, domain, ok, failures):
    from store.models import TlsFailureDetail, TlsPolicy, TlsReport

    begin = datetime.combine(day, datetime.min.time(), timezone.utc)
    msg = InboundMessage(sha256=f"{n:064x}", received_at=begin, source="file", size=1, kind="smtp_tls",
                         status="parsed")
    s.add(msg)
    s.flush()
    failed = sum(failures.values())
    report = TlsReport(message_id=msg.id, organization_name="Google Inc.", report_id=f"t{n}", begin=begin,
                       end=begin + timedelta(days=1), successful_sessions=ok, failed_sessions=failed)
    policy = TlsPolicy(policy_type="sts", policy_domain=domain, successful_sessions=ok, failed_sessions=failed)
    policy.failures = [TlsFailureDetail(result_type=t, failed_sessions=n_failed, receiving_mx_hostname="mx2." + domain)
                       for t, n_failed in failures.items()]
    report.policies = [policy]
    s.add(report)
    s.flush()


def test_a_tls_alert_per_policy_domain_names_the_result_types(store):
    from analysis import rollups

    with store.begin() as s:
        _tls_report(s, 1, TODAY, "news.example.com", 320, {"certificate-expired": 150, "validation-failure": 2})
        _tls_report(s, 2, TODAY, "mail.example.net", 300, {"validation-failure": 2})  # background noise
        rollups.update(s, now=NOW)
    run(store)
    tls = {k: a for k, a in open_alerts(store).items() if k[0] == "tls_failure_rate" and k[1] == "sending_domain"}
    assert list(tls) == [("tls_failure_rate", "sending_domain", "news.example.com")]
    alert = tls[("tls_failure_rate", "sending_domain", "news.example.com")]
    assert alert.severity == "critical" and "certificate-expired: 150" in alert.message
    assert alert.details["result_types"] == {"certificate-expired": 150, "validation-failure": 2}


def test_a_backlog_is_judged_day_by_day_as_it_happened(store):
    """Ten days read in at once: the episode of days 4-5 opens dated day 4 and is resolved dated
    day 6 — not one alert on today's data alone."""
    from analysis.alerts import judge
    from analysis.rollups import mark_days_to_judge

    first = TODAY - timedelta(days=9)
    with store.begin() as s:
        for i in range(10):
            day = first + timedelta(days=i)
            put(s, "sending_domain", "news.example", day, sent=10_000, complaints=80 if i in (3, 4) else 3)
        mark_days_to_judge(s, {first + timedelta(days=i) for i in range(10)}, NOW)
    with store.begin() as s:
        counts = judge(s, CFG, NOW)
    assert counts["days"] == 10 and counts["opened"] == 1 and counts["resolved"] == 1
    with store() as s:
        [alert] = s.scalars(select(Alert).where(Alert.rule == "complaint_rate")).all()
    assert alert.opened_at.date() == first + timedelta(days=3)
    assert alert.resolved_at.date() == first + timedelta(days=5)
    assert alert.last_seen_at.date() == first + timedelta(days=4)
    with store.begin() as s:  # judged: nothing to do again but today
        assert judge(s, CFG, NOW)["days"] == 1


def test_late_reports_for_a_past_day_open_its_alert_dated_that_day(store):
    """The TLS reports of a day arrive the next: the day is judged again when they do."""
    from analysis import rollups

    yesterday = TODAY - timedelta(days=1)
    ctx = JobContext(sessions=store, settings=Config(), clock=lambda: NOW)
    alerts_job(ctx)  # today judged, nothing there
    with store.begin() as s:
        _tls_report(s, 3, yesterday, "news.example.com", 300, {"certificate-expired": 140})
        rollups.update(s, now=NOW + timedelta(minutes=5))
    assert alerts_job(JobContext(sessions=store, settings=Config(), clock=lambda: NOW + timedelta(minutes=15))) >= 1
    alert = open_alerts(store)[("tls_failure_rate", "sending_domain", "news.example.com")]
    assert alert.opened_at.date() == yesterday


def test_analyze_since_judges_the_past_again(store, database, monkeypatch, capsys):
    from postwatch.cli import main

    first = TODAY - timedelta(days=4)
    with store.begin() as s:  # rollups written without marking the days: a store from before
        for i in range(5):
            put(s, "sending_domain", "news.example", first + timedelta(days=i), sent=10_000,
                complaints=80 if i == 1 else 3)
    monkeypatch.setenv("POSTWATCH_DATABASE__URL", database.url)
    monkeypatch.setattr("store.clock.utcnow", lambda: NOW)
    assert main(["analyze", "--job", "alerts", "--since", first.isoformat()]) == 0
    with store() as s:
        [alert] = s.scalars(select(Alert).where(Alert.rule == "complaint_rate")).all()
    assert (alert.opened_at.date(), alert.resolved_at.date()) == (first + timedelta(days=1), first + timedelta(days=2))
    assert main(["analyze", "--since", (TODAY + timedelta(days=1)).isoformat()]) == 2
    assert "after today" in capsys.readouterr().err


def test_block_rate_stays_open_while_the_refusals_last(store):
    with store.begin() as s:
        for i in range(1, 15):
            put(s, "provider", "microsoft", TODAY - timedelta(days=i), sent=10_000, bounced=600,
                bounced__reputation=500 if i <= 3 else 20)  # a block that began 3 days ago
        put(s, "provider", "microsoft", TODAY, sent=10_000, bounced=600, bounced__reputation=520)
    run(store)
    alerts = open_alerts(store)
    assert alerts[("block_rate", "provider", "microsoft")].severity == "critical"
    assert "5.20%" in alerts[("block_rate", "provider", "microsoft")].message


def test_no_source_is_new_before_the_reports_reach_back_far_enough(store):
    with store.begin() as s:  # the first day of reports: everything would look new
        _dmarc(s, 1, "203.0.113.66", NOW - timedelta(days=1), False)
    run(store)
    assert open_alerts(store) == {}


def test_a_policy_refusal_of_the_sender_counts_as_a_block(store):
    # Yahoo's TSS04 deferral in reply to MAIL FROM is read as `rejected` (policy category)
    with store.begin() as s:
        put(s, "provider", "yahoo", TODAY, sent=10_000, bounced=900, bounced__policy=800)
    run(store)
    assert open_alerts(store)[("block_rate", "provider", "yahoo")].severity == "critical"


def test_an_escalated_alert_keeps_the_words_of_its_worst_day(store):
    with store.begin() as s:
        put(s, "campaign", "spring", TODAY, sent=10_000, complaints=40)
    run(store)
    with store.begin() as s:
        put(s, "campaign", "spring", TODAY, complaints=20)  # better, still over the warning line
    run(store, NOW + timedelta(minutes=15))
    [alert] = open_alerts(store).values()
    assert alert.severity == "critical" and "critical line" in alert.message and alert.times_seen == 2


def test_the_complaint_rate_is_of_the_sends_that_can_complain(store):
    """A Gmail-heavy sender: 6 complaints of 2,851 sends is 0.21 % (too few to say), but Gmail and
    Apple send no complaint reports: 6 of the 821 sends to Yahoo and Microsoft is 0.73 %."""
    with store.begin() as s:
        put(s, "campaign", "win-back", TODAY, sent=2_851, sent__fbl=821, complaints=6)
        put(s, "campaign", "receipts", TODAY, sent=2_851, complaints=6)  # nothing known of the providers
    run(store)
    got = {k[2]: a for k, a in open_alerts(store).items() if k[0] == "complaint_rate"}
    assert list(got) == ["win-back"] and got["win-back"].severity == "critical"
    assert "6 of 821 sent to providers that report complaints" in got["win-back"].message
