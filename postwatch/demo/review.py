"""What an analyst checks after a story has played: did each episode raise its alert, and when.

For each episode of a story, the alerts that should open — the rule(s), and the dimension
and key an analyst would look under — and, from the store, when the first of them opened;
how much of the feedback is on a sending IP; and the critical alerts that opened on a day
without an episode (a day after an episode's end still counts as its own: reports about a
day arrive the next). tests/test_demo_scenarios.py asserts on it, bench/scenarios.py prints it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from postwatch.demo.stories import DEFAULT, SECOND, Story
from store.alerts import Alert
from store.models import BounceEvent, ComplaintEvent

BLOCK_RULES = ("block_rate", "block_spike")


@dataclass(frozen=True)
class Play:
    """How a story is played for its review: length, last day, seed."""

    story: Story
    days: int
    end: date
    seed: int


# the plays tests/test_demo_scenarios.py checks and bench/scenarios.py prints
PLAYS = {"default": Play(DEFAULT, 60, date(2026, 3, 15), 3),
         "second": Play(SECOND, SECOND.days, date(2025, 11, 30), 11)}


@dataclass(frozen=True)
class Expected:
    """An alert an episode should open: one of `rules` on (dimension, key)."""

    episode: str
    rules: tuple[str, ...]
    dimension: str
    key: str
    severity: str | None = None  # the severity it must reach, when one is required

    def __str__(self) -> str:
        return f"{'/'.join(self.rules)} on {self.dimension} {self.key}" + (f" ({self.severity})" if self.severity
                                                                             else "")


def expected_alerts(story: Story) -> list[Expected]:
    """The alerts each episode of `story` should open, where an analyst looks for them."""
    b, s = story.block, story.spike
    return [
        Expected("listing", ("blocklist",), "sending_ip", story.listing.ip),
        Expected("block", BLOCK_RULES, "provider", b.provider, "critical"),
        Expected("block", BLOCK_RULES, "sending_ip", b.ip, "critical"),
        Expected("spike", ("complaint_rate",), "campaign", s.campaign.name),
        *(Expected("spike", ("complaint_rate",), "provider", p) for p in s.providers),
        Expected("spoof", ("dmarc_new_source",), "dmarc_source", f"{story.spoof.domain} {story.spoof.ip}"),
        Expected("tls_outage", ("tls_failure_rate",), "sending_domain", story.tls_outage.domain),
    ]


def first_opened(session: Session, expected: Expected, first: date, last: date) -> Alert | None:
    """The first alert `expected` names opened from `first` to the day after `last`."""
    query = (select(Alert).where(Alert.rule.in_(expected.rules), Alert.dimension == expected.dimension,
                                 Alert.key == expected.key).order_by(Alert.opened_at, Alert.id))
    if expected.severity:
        query = query.where(Alert.severity == expected.severity)
    for alert in session.scalars(query):
        if first <= opened_day(alert) <= last + timedelta(days=1):
            return alert
    return None


@dataclass(frozen=True)
class Detection:
    expected: Expected
    first_day: date  # the episode's
    opened: date | None  # the first such alert's day; None: it did not open
    severity: str | None = None
    message: str = ""

    @property
    def delay(self) -> int | None:
        return None if self.opened is None else (self.opened - self.first_day).days


def detections(session: Session, story: Story, episodes: dict[str, tuple[date, date]]) -> list[Detection]:
    out = []
    for e in expected_alerts(story):
        first, last = episodes[e.episode]
        alert = first_opened(session, e, first, last)
        out.append(Detection(e, first, opened_day(alert) if alert else None,
                             alert.severity if alert else None, alert.message if alert else ""))
    return out


def episode_days(episodes: dict[str, tuple[date, date]]) -> set[date]:
    """Every day of an episode, and the day after each (its reports arrive then)."""
    return {first + timedelta(days=i) for first, last in episodes.values() for i in range((last - first).days + 2)}


def false_criticals(session: Session, episodes: dict[str, tuple[date, date]]) -> list[Alert]:
    """The critical alerts that opened on a day without an episode."""
    days = episode_days(episodes)
    return [a for a in _criticals(session) if opened_day(a) not in days]


def late_criticals(session: Session, episodes: dict[str, tuple[date, date]]) -> list[Alert]:
    """The critical alerts that opened on the day after an episode's end, outside every episode."""
    during = {first + timedelta(days=i) for first, last in episodes.values() for i in range((last - first).days + 1)}
    after = episode_days(episodes) - during
    return [a for a in _criticals(session) if opened_day(a) in after]


def opened_day(alert: Alert) -> date:
    """The (UTC) day an alert opened: the day it judged."""
    at: datetime = alert.opened_at
    return (at.astimezone(timezone.utc) if at.tzinfo else at).date()


def _criticals(session: Session) -> list[Alert]:
    return list(session.scalars(select(Alert).where(Alert.severity == "critical").order_by(Alert.opened_at)))


def attributed_share(session: Session) -> dict[str, tuple[int, int]]:
    """(events with a sending IP, events) of the bounces and of the complaints."""
    out = {}
    for name, table in (("bounces", BounceEvent), ("complaints", ComplaintEvent)):
        total, known = session.execute(select(func.count(), func.count(table.sending_ip))).one()
        out[name] = (int(known), int(total))
    return out
