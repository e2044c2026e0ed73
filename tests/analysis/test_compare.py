"""A/B comparison: Wilson intervals and the two-proportion test against known values, groups from the send log."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from analysis.compare import compare, two_proportion_test, wilson
from tests.analysis import history_a as h

D = date(2026, 5, 4)
SINCE = datetime(2026, 5, 1, tzinfo=timezone.utc)


def test_wilson_interval_known_values():
    low, high = wilson(10, 100)  # the textbook example: 0.0552 .. 0.1744
    assert low == pytest.approx(0.05523, abs=1e-4) and high == pytest.approx(0.17437, abs=1e-4)
    low, high = wilson(0, 50)
    assert low == 0 and high == pytest.approx(0.07135, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_two_proportion_test_known_values():
    z, p = two_proportion_test(45, 500, 25, 500)  # 9 % vs 5 %
    assert z == pytest.approx(2.4788, abs=1e-3) and p == pytest.approx(0.01318, abs=1e-4)
    z, p = two_proportion_test(10, 100, 10, 100)
    assert z == 0 and p == 1
    assert two_proportion_test(0, 0, 1, 10) == (0.0, 1.0)


def _groups(s):
    # pool "warm": 400 sends, 40 bounced (10 refused at SMTP time, 30 DSNs, 20 of them blocks), 2 complaints
    # pool "main": 400 sends, 8 bounced (DSNs, no blocks), 1 complaint
    for pool, n, refused, dsn, blocks, complaints in (("warm", 400, 10, 30, 20, 2), ("main", 400, 0, 8, 0, 1)):
        for i in range(n):
            result = "bounced" if i < refused else "sent"
            row = h.send(s, D, recipient=f"{pool}{i}@gmail.com", pool=pool, result=result)
            if refused <= i < refused + dsn:
                h.bounce(s, D, "blocked" if i < refused + blocks else "userunknown", send_id=row.id,
                         recipient=row.recipient)
            if refused + dsn <= i < refused + dsn + complaints:
                h.complaint(s, D, send_id=row.id, recipient=row.recipient)
        h.send(s, D, pool=pool, result="deferred")  # no outcome yet: not counted
    old = h.send(s, D - timedelta(days=30), pool="warm")  # before --since
    h.bounce(s, D, "mailboxfull", send_id=old.id, action="delayed")


def test_groups_from_the_send_log(store):
    with store() as s, s.begin():
        _groups(s)
        result = compare(s, "pool", ("warm",), ("main",), SINCE)
    a, b = result["a"], result["b"]
    assert (a.sends, a.bounced, a.blocked, a.delivered, a.complaints) == (400, 40, 20, 360, 2)
    assert (b.sends, b.bounced, b.blocked, b.delivered, b.complaints) == (400, 8, 0, 392, 1)
    rates = {r.metric: r for r in result["rates"]}
    assert rates["bounce"].a[2] == 0.1 and rates["bounce"].significant()
    assert rates["block"].significant() and rates["block"].b[3] == 0
    assert not rates["complaint"].significant()
    assert rates["delivery"].a[1] == 400 and rates["complaint"].a[1] == 360


def test_compare_command(store, database, monkeypatch, capsys):
    from postwatch.cli import main

    with store() as s, s.begin():
        _groups(s)
    monkeypatch.setenv("POSTWATCH_DATABASE__URL", database.url)
    import analysis.compare as cmp
    from store import clock

    monkeypatch.setattr(clock, "utcnow", lambda: datetime(2026, 5, 5, tzinfo=timezone.utc))
    assert main(["compare", "--by", "pool", "warm", "main", "--since", "7", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["groups"]["A"]["sends"] == 400 and out["rates"][1]["metric"] == "bounce"
    assert out["rates"][1]["significant"] is True
    assert main(["compare", "--by", "pool", "warm", "main,nothing"]) == 0
    text = capsys.readouterr().out
    assert "bounce" in text and "A higher" in text and "no evidence of a difference" in text
    assert cmp.FIELDS


def test_the_dashboard_and_the_command_give_the_same_rates(store):
    """More complaints than deliveries (both sends complained of, one also bounced later): the
    command's rate from the send log used to be above 1 (its interval raised ValueError), the
    dashboard's from the rollups was clamped at 1. Both now go through rate_comparisons."""
    from analysis import rollups
    from analysis.compare import GroupCounts, rate_comparisons
    from dashboard.data import compare_groups
    from dashboard.filters import Filters

    with store() as s, s.begin():
        first = h.send(s, D, recipient="x1@gmail.com", campaign="spring")
        second = h.send(s, D, recipient="x2@gmail.com", campaign="spring")
        h.bounce(s, D, "userunknown", recipient=first.recipient, send_id=first.id, campaign="spring")
        for row in (first, second):
            h.complaint(s, D, recipient=row.recipient, send_id=row.id, campaign="spring")
        for i in range(4):
            row = h.send(s, D, recipient=f"y{i}@gmail.com", campaign="summer")
        h.complaint(s, D, recipient=row.recipient, send_id=row.id, campaign="summer")
        rollups.update(s, now=datetime(2026, 5, 5, tzinfo=timezone.utc))
    with store() as s:
        command = compare(s, "campaign", ("spring",), ("summer",), SINCE)
        dashboard = compare_groups(s, "campaign", ("spring",), ("summer",), Filters(SINCE.date(), D))
    for result in (command, dashboard):
        a = result["a"]
        assert (a.sends, a.bounced, a.delivered, a.complaints) == (2, 1, 1, 2)
    mine = {r.metric: r for r in command["rates"]}
    theirs = {r.metric: r for r in dashboard["rates"]}
    assert mine == theirs
    assert mine["complaint"].a[:3] == (1, 1, 1.0) and mine["complaint"].b[:3] == (1, 4, 0.25)
    assert all(0 <= r.a[2] <= 1 and 0 <= r.a[3] <= r.a[4] <= 1 for r in mine.values())
    clamped = GroupCounts.of("A", ("x",), sends=3, bounced=5, blocked=0, complaints=0)
    assert (clamped.bounced, clamped.delivered) == (3, 0)
    assert rate_comparisons(clamped, clamped)[1].a[:3] == (3, 3, 1.0)
