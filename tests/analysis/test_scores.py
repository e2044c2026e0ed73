"""The reputation score: known answers for the formula, the grades, the caps and Gmail's 7-day recovery."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from analysis.scores import ScoresConfig, compute, grade, loss, score_pending
from store.rollups import Rollup, Score, ScorePending

CFG = ScoresConfig()
D = date(2026, 6, 10)
NOW = datetime(2026, 6, 30, tzinfo=timezone.utc)


def test_loss_is_a_quarter_of_the_weight_at_the_good_line_and_all_of_it_at_the_bad_line():
    assert loss(0, 0.001, 0.003, 40) == 0
    assert loss(0.0005, 0.001, 0.003, 40) == pytest.approx(5)
    assert loss(0.001, 0.001, 0.003, 40) == pytest.approx(10)
    assert loss(0.002, 0.001, 0.003, 40) == pytest.approx(25)
    assert loss(0.003, 0.001, 0.003, 40) == 40
    assert loss(0.5, 0.001, 0.003, 40) == 40


def test_the_readme_worked_example():
    metrics = {"sent": 10_000, "complaints": 15, "hard": 120, "bounced.reputation": 50,
               "dmarc.messages": 9_500, "dmarc.aligned": 9_400}
    score, g, c = compute({D: metrics}, D, CFG)
    assert c["complaints"]["lost"] == pytest.approx(17.5)
    assert c["hard_bounces"]["lost"] == pytest.approx(3.0)
    assert c["blocks"]["lost"] == pytest.approx(1.875)
    assert c["dmarc_unaligned"]["lost"] == pytest.approx(1.3158, abs=1e-4)
    assert c["tls_failures"]["lost"] == 0 and c["tls_failures"]["note"] == "no data"
    assert score == 76.31 and g == "watch"
    # the complaint rate is past its good line: the grade can be no better than watch, and says why
    assert [(cap["rule"], cap["component"], cap["cap"]) for cap in c["caps"]] == [
        ("complaints_past_good", "complaints", 79.0)]
    assert c["volume"] == {"messages": 10_000, "basis": "sent"}


def test_clean_day_is_100_and_a_listing_costs_its_weight():
    score, g, _ = compute({D: {"sent": 5000}}, D, CFG)
    assert (score, g) == (100.0, "good")
    score, g, c = compute({D: {"sent": 5000}}, D, CFG, ["zen.spamhaus.org"])
    assert c["blocklists"]["lost"] == 10.0 and c["blocklists"]["zones"] == ["zen.spamhaus.org"]
    assert (score, g) == (79.0, "watch") and c["caps"][0]["rule"] == "blocklist_listing"  # listed is never good


def test_one_catastrophic_signal_caps_the_grade_whatever_the_rest_says():
    # a third of the day's mail refused: only 15 points of blocks, but the day is critical
    score, g, c = compute({D: {"sent": 10_000, "bounced.reputation": 3_600}}, D, CFG)
    assert c["blocks"]["lost"] == 15.0 and g == "critical" and score == 49.0
    assert c["caps"][0] == {"rule": "blocks_at_or_above_bad", "component": "blocks", "cap": 49.0}
    # past the good line only: no better than watch
    score, g, c = compute({D: {"sent": 10_000, "dmarc.messages": 10_000, "dmarc.aligned": 8_800}}, D, CFG)
    assert g == "watch" and c["caps"][0]["component"] == "dmarc_unaligned"


def test_too_few_events_say_nothing_until_the_wilson_bound_passes():
    # 3 complaints in 500 (0.6 %): the Wilson lower bound (0.20 %) is under the 0.3 % line ...
    score, g, c = compute({D: {"sent": 500, "complaints": 3}}, D, CFG)
    assert c["complaints"]["judged_rate"] == pytest.approx(0.002043, abs=1e-6)  # by hand: (0.009842 - 0.007783) / 1.00768
    assert c["complaints"]["grade"] == "watch" and g == "watch"  # ... but over the 0.1 % line
    # one or two complaints are never an episode, whatever the denominator
    for n in (1, 2):
        score, g, c = compute({D: {"sent": 150, "complaints": n}}, D, CFG)
        assert c["complaints"]["note"] == "too few to say" and g == "good" and c["complaints"]["lost"] == 0
    # 8 in 200 (4 %): fewer than min_count events, yet the bound (2.0 %) passes the bad line
    score, g, c = compute({D: {"sent": 200, "complaints": 8}}, D, CFG)
    assert g == "critical" and "note" not in c["complaints"]


def test_grades_and_their_configurable_lines():
    assert [grade(s, CFG) for s in (100, 80, 79.99, 50, 49.99, 0)] == \
        ["good", "good", "watch", "watch", "critical", "critical"]
    strict = ScoresConfig(good=90, watch=70)
    assert [grade(s, strict) for s in (90, 85, 69)] == ["good", "watch", "critical"]


def test_reaching_the_bad_complaint_line_is_critical_whatever_else():
    score, g, c = compute({D: {"sent": 10_000, "complaints": 30}}, D, CFG)
    assert score == 49 and g == "critical"
    assert c["caps"][0]["rule"] == "complaint_rate_at_or_above_bad"


def test_dmarc_volume_is_the_denominator_when_no_sends_are_known_and_small_days_get_no_score():
    score, _, c = compute({D: {"dmarc.messages": 2000, "dmarc.aligned": 2000, "complaints": 1}}, D, CFG)
    assert c["volume"]["basis"] == "dmarc.messages" and c["complaints"]["rate"] == 0.0005
    assert compute({D: {"sent": 99}}, D, CFG) is None
    assert compute({D: {"sent": 10}}, D, ScoresConfig(min_volume=10)) is not None


def test_seven_consecutive_days_under_the_line_to_recover():
    days = {D + timedelta(days=i): {"sent": 10_000, "complaints": 2} for i in range(10)}
    days[D] = {"sent": 10_000, "complaints": 40}  # 0.4 %: a breach
    results = {i: compute(days, D + timedelta(days=i), CFG) for i in range(10)}
    assert results[0][0] == 49
    for i in range(1, 7):  # days 1..6 after the breach are clean but capped at watch
        score, g, c = results[i]
        assert (score, g) == (79, "watch"), i
        assert c["caps"][0]["clean_days"] == i and c["caps"][0]["needed"] == 7
    assert results[7][1] == "good" and results[7][2]["caps"] == []  # the 7th clean day: recovered
    # a configurable recovery
    assert compute(days, D + timedelta(days=3), ScoresConfig(recovery_days=3))[2]["caps"] == []


def _rollup(s, day, dimension, key, **metrics):
    for metric, value in metrics.items():
        s.add(Rollup(day=day, dimension=dimension, key=key, metric=metric.replace("_", "."), value=value))
    s.merge(ScorePending(day=day, dimension=dimension, key=key))


def test_the_job_rescores_only_what_changed_and_a_late_breach_caps_the_days_after(store):
    with store() as s, s.begin():
        for i in range(5):
            _rollup(s, D + timedelta(days=i), "sending_ip", "192.0.2.10", sent=10_000, complaints=1)
        _rollup(s, D, "sending_ip", "192.0.2.99", sent=50)  # under min_volume: no score
        assert score_pending(s, now=NOW, config=CFG) == 5
        assert s.scalars(select(ScorePending)).all() == []
        assert score_pending(s, now=NOW, config=CFG) == 0  # idempotent
    with store() as s, s.begin():  # complaints of day 1 arrive late: a breach
        s.scalars(select(Rollup).where(Rollup.day == D + timedelta(days=1), Rollup.metric == "complaints")).one().value = 35
        s.merge(ScorePending(day=D + timedelta(days=1), dimension="sending_ip", key="192.0.2.10"))
        assert score_pending(s, now=NOW, config=CFG) == 4  # day 1 and the 3 days after it
        scores = {x.day: x for x in s.scalars(select(Score).where(Score.key == "192.0.2.10"))}
    assert [scores[D + timedelta(days=i)].grade for i in range(5)] == ["good", "critical", "watch", "watch", "watch"]
    assert scores[D + timedelta(days=3)].components["caps"][0]["last_breach"] == (D + timedelta(days=1)).isoformat()


def test_blocklist_listings_lower_the_listed_ip(store, monkeypatch):
    import analysis.blocklists

    monkeypatch.setattr(analysis.blocklists, "listed",
                        lambda session, day: {("sending_ip", "192.0.2.10"): ["bl.example.org"]} if day == D else {})
    with store() as s, s.begin():
        _rollup(s, D, "sending_ip", "192.0.2.10", sent=1000)
        _rollup(s, D, "sending_ip", "192.0.2.11", sent=1000)
        _rollup(s, D, "all", "", sent=2000)
        score_pending(s, now=NOW, config=CFG)
        got = {(x.dimension, x.key): x.score for x in s.scalars(select(Score))}
    assert got == {("sending_ip", "192.0.2.10"): 79.0, ("sending_ip", "192.0.2.11"): 100.0, ("all", ""): 79.0}


def test_scores_from_events_end_to_end(store):
    from analysis import rollups
    from tests.analysis import history_a as h

    with store() as s, s.begin():
        for i in range(200):
            h.send(s, D, recipient=f"u{i}@gmail.com")
            h.send(s, D, recipient=f"u{i}@yahoo.com")
        h.complaint(s, D, "abuse", recipient="u1@gmail.com")  # 1 in 200: 0.5 %, but one complaint
        for i in range(12):
            h.complaint(s, D, "abuse", recipient=f"u{i}@yahoo.com")  # 12 in 200: 6 %
        rollups.update(s, now=NOW)
        score_pending(s, now=NOW, config=CFG)
        rows = {r.key: r for r in s.scalars(select(Score).where(Score.dimension == "provider"))}
    google, yahoo = rows["google"].components["complaints"], rows["yahoo"].components["complaints"]
    assert google["rate"] == 0.005 and google["note"] == "too few to say" and google["grade"] == "good"
    assert rows["google"].grade == "good"
    assert yahoo["rate"] == 0.06 and yahoo["grade"] == "critical" and rows["yahoo"].grade == "critical"


def test_the_jobs_and_the_scores_command(store, database, monkeypatch, capsys):
    from analysis.jobs import JobContext, all_jobs
    from postwatch.cli import main
    from postwatch.config import load
    from tests.analysis import history_a as h

    with store() as s, s.begin():
        for i in range(3000):
            h.send(s, D, recipient=f"u{i}@yahoo.com", sending_ip="192.0.2.20")
        for i in range(10):
            h.complaint(s, D, "abuse", recipient=f"u{i}@yahoo.com", source_ip="192.0.2.20")
    jobs = {j.name: j for j in all_jobs()}
    assert jobs["rollups"].order < jobs["dmarc_sources"].order < jobs["scores"].order
    monkeypatch.setenv("POSTWATCH_DATABASE__URL", database.url)
    monkeypatch.setenv("POSTWATCH_PROVIDERS__MX_LOOKUPS", "false")
    ctx = JobContext(sessions=store, settings=load(environ={"POSTWATCH_DATABASE__URL": database.url,
                                                          "POSTWATCH_PROVIDERS__MX_LOOKUPS": "false"}),
                     clock=lambda: NOW)
    assert jobs["rollups"].run(ctx) > 0 and jobs["scores"].run(ctx) > 0
    assert jobs["rollups"].run(ctx) == 0 and jobs["scores"].run(ctx) == 0  # idempotent
    assert main(["scores", "--dimension", "sending_ip"]) == 0
    out = capsys.readouterr().out
    assert f"scores on {D}" in out and "192.0.2.20" in out and "complaints 0.33% -40.0" in out
    assert "critical" in out and "capped at 49" in out
    assert main(["scores", "--day", "2026-06-10", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["dimension"] for r in rows} == {"all", "sending_domain", "sending_ip", "provider", "campaign"}
    assert main(["scores", "--day", "2020-01-01"]) == 0 and "no scores on 2020-01-01" in capsys.readouterr().out


def test_policy_refusals_of_the_sender_are_blocks():
    score, g, c = compute({D: {"sent": 10_000, "bounced.policy": 700, "bounced.reputation": 100}}, D, CFG)
    assert c["blocks"]["count"] == 800 and g == "critical"


def test_the_complaint_component_is_of_the_sends_that_can_complain():
    score, g, c = compute({D: {"sent": 10_000, "sent.fbl": 2_000, "complaints": 12}}, D, CFG)
    assert (c["complaints"]["count"], c["complaints"]["total"], c["complaints"]["rate"]) == (12, 2_000, 0.006)
    assert g == "critical"
    # nothing sent to a provider with a feedback loop: all sends are the base
    score, g, c = compute({D: {"sent": 10_000, "complaints": 12}}, D, CFG)
    assert c["complaints"]["total"] == 10_000
