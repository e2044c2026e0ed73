"""Warm-up: the daily cap per sending IP on its ramp, and providers paused on a critical grade."""
from datetime import date, datetime, timezone

from sender.warmup import Budget, Ramp, critical_providers, sent_today
from store.rollups import Score
from store.volume import SendLog

NOW = datetime(2026, 3, 3, 15, 0, tzinfo=timezone.utc)


def test_the_ramp_grows_then_ends():
    ramp = Ramp.from_config("2026-03-01", ("50", "100", "500"))
    assert [ramp.cap(date(2026, 3, d)) for d in (1, 2, 3, 4)] == [50, 100, 500, None]
    assert ramp.cap(date(2026, 2, 20)) == 50  # before the start: the first step
    assert Ramp.from_config("", ("50",)).cap(date(2026, 3, 1)) is None


def _log(s, ip, result, when):
    s.add(SendLog(sent_at=when, recipient="x@example.org", sending_ip=ip, result=result, campaign="c"))


def test_the_cap_counts_what_receivers_saw_today_from_that_ip(store):
    with store.begin() as s:
        for result in ("sent", "sent", "bounced", "deferred", "suppressed", "queued"):
            _log(s, "192.0.2.1", result, NOW)
        _log(s, "192.0.2.1", "sent", datetime(2026, 3, 2, 23, 59, tzinfo=timezone.utc))  # yesterday
        _log(s, "192.0.2.2", "sent", NOW)
    with store() as s:
        assert sent_today(s, "192.0.2.1", NOW) == 3
        budget = Budget.load(s, Ramp.from_config("2026-03-01", ("1", "2", "4")), "192.0.2.1", NOW)
    assert budget.cap == 4 and budget.refuse("gmail") is None
    budget.take()
    assert "warm-up cap reached: 4" in budget.refuse("gmail")
    budget.give_back()
    assert budget.refuse(None) is None


def test_a_provider_with_a_critical_latest_grade_is_paused(store):
    with store.begin() as s:
        for day, key, grade in ((date(2026, 3, 1), "gmail", "good"), (date(2026, 3, 2), "gmail", "critical"),
                                (date(2026, 3, 1), "yahoo", "critical"), (date(2026, 3, 2), "yahoo", "watch"),
                                (date(2026, 3, 2), "send.example.com", "critical")):
            dimension = "sending_domain" if "." in key else "provider"
            s.add(Score(day=day, dimension=dimension, key=key, score=10.0, grade=grade, components={},
                        computed_at=NOW))
    with store() as s:
        assert critical_providers(s) == {"gmail"}
        budget = Budget.load(s, Ramp.from_config("", ()), "", NOW)
    assert "provider gmail is paused" in budget.refuse("gmail")
    assert budget.refuse("yahoo") is None and budget.refuse(None) is None
