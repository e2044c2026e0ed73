"""A/B comparison of two groups of sends, so that a routing change is judged on evidence.

A group is the sends of the send log whose `by` field (sending_ip, pool, dkim_selector,
campaign or tag) has one of the group's values. For each group: sends (attempts that reached
a receiver), bounced (refused at SMTP time, or a later DSN that is not a delay), blocked (a
`reputation`-category bounce), delivered (sends - bounced), complaints (over delivered).
Each rate comes with its Wilson 95 % interval; the two groups are compared with a
two-proportion z-test (pooled), two-sided p-value. `rate_comparisons` is the one place the
rates are worked out: the `compare` command reads its counts from the send log, the
dashboard from the rollups, and both hand them to it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, distinct, func, or_, select
from sqlalchemy.orm import Session

from store.models import BounceEvent, ComplaintEvent
from store.volume import SendLog

FIELDS = ("sending_ip", "pool", "dkim_selector", "campaign", "tag", "sending_domain")
Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact at the ends, no rounding dust
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p-value) of H0: the two proportions are equal (pooled standard error)."""
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class GroupCounts:
    label: str
    values: tuple[str, ...]
    sends: int
    delivered: int
    bounced: int
    blocked: int
    complaints: int

    @classmethod
    def of(cls, label: str, values: tuple[str, ...], *, sends: int, bounced: int, blocked: int,
           complaints: int) -> GroupCounts:
        """The counts of a group, `delivered` being the sends that did not bounce. Bounces can
        outnumber sends in the rollups (a DSN for a send outside the range): then every send
        bounced and none was delivered."""
        bounced = min(bounced, sends) if sends else bounced
        return cls(label, values, sends, max(sends - bounced, 0), bounced, blocked, complaints)


@dataclass(frozen=True)
class RateComparison:
    metric: str
    a: tuple[int, int, float, float, float]  # successes, n, rate, low, high
    b: tuple[int, int, float, float, float]
    z: float
    p_value: float

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha

    def as_dict(self) -> dict[str, Any]:
        def side(t):
            return {"count": t[0], "n": t[1], "rate": t[2], "ci95": [t[3], t[4]]}
        return {"metric": self.metric, "a": side(self.a), "b": side(self.b), "difference": self.a[2] - self.b[2],
                "z": self.z, "p_value": self.p_value, "significant": self.significant()}


RATES = (("delivery", "delivered", "sends"), ("bounce", "bounced", "sends"),
         ("block", "blocked", "sends"), ("complaint", "complaints", "delivered"))


def rate_comparisons(a: GroupCounts, b: GroupCounts) -> list[RateComparison]:
    """Each rate of `RATES` for groups `a` and `b`, with its interval and the test between them.

    A count larger than its base (complaints about sends that also bounced later, so more
    complaints than deliveries) is read as the whole base: a rate is never above 1.
    """
    rows = []
    for metric, num, den in RATES:
        na, nb = getattr(a, den), getattr(b, den)
        xa, xb = min(getattr(a, num), na), min(getattr(b, num), nb)
        z, p = two_proportion_test(xa, na, xb, nb)
        rows.append(RateComparison(metric, _side(xa, na), _side(xb, nb), z, p))
    return rows


def _side(x: int, n: int) -> tuple[int, int, float, float, float]:
    low, high = wilson(x, n)
    return x, n, (x / n if n else 0.0), low, high


def group_counts(session: Session, by: str, values: tuple[str, ...], since: datetime, label: str) -> GroupCounts:
    if by not in FIELDS:
        raise ValueError(f"--by must be one of {', '.join(FIELDS)}")
    s = SendLog
    field = getattr(s, by)
    in_group = and_(field.in_(values), s.sent_at >= since)
    sends, accepted, refused = session.execute(
        select(func.count(), func.sum(case((s.result == "sent", 1), else_=0)),
               func.sum(case((s.result == "bounced", 1), else_=0)))
        .where(in_group, s.result.in_(("sent", "bounced")))).one()
    b = BounceEvent
    failed = and_(b.category.notin_(("delivered", "auto_reply")), or_(b.action.is_(None), b.action != "delayed"))
    later_bounces = session.scalar(
        select(func.count(distinct(b.send_id))).join(s, s.id == b.send_id)
        .where(b.occurred_at >= since, in_group, s.result == "sent", failed)) or 0
    blocked = session.scalar(
        select(func.count(distinct(b.send_id))).join(s, s.id == b.send_id)
        .where(b.occurred_at >= since, in_group, s.result.in_(("sent", "bounced")), b.category == "reputation")) or 0
    c = ComplaintEvent
    complaints = session.scalar(
        select(func.count(distinct(c.send_id))).join(s, s.id == c.send_id)
        .where(c.occurred_at >= since, in_group)) or 0
    return GroupCounts.of(label, values, sends=sends or 0, bounced=(refused or 0) + later_bounces,
                          blocked=blocked, complaints=complaints)


def compare(session: Session, by: str, a: tuple[str, ...], b: tuple[str, ...], since: datetime) -> dict[str, Any]:
    """Counts, rates with Wilson 95 % intervals and z-tests of groups `a` and `b`."""
    ga = group_counts(session, by, a, since, "A")
    gb = group_counts(session, by, b, since, "B")
    return {"by": by, "since": since.isoformat(), "a": ga, "b": gb, "rates": rate_comparisons(ga, gb)}
