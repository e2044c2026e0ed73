"""Open and click rates of tracked mail, each as *human* (machine hits left out) and *all*.

A rate is a share of messages: of the send-log rows `sent` (accepted by the receiver) of the
tracked campaigns since their first tracked run (store.engagement.TrackedCampaign), the ones
with at least one open (click) — human: one that is not a machine's. Hits count each fetch
(a replayed pixel is one more hit, the same opened message). Messages are counted on the day
they were sent, so a day's rate grows for a few days as its mail is read.

    rates(session, first, last, by=("day", "campaign", "provider")) -> list[Rates]
    regroup(rows, by) -> list[Rates]   (rates by all keys summed to fewer, without a query)
    trend(session, day, dimension, key, window=7) -> dict | None   (the score's explanation)
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Any, Iterable

from sqlalchemy import and_, case, distinct, func, select
from sqlalchemy.orm import Session

from store.columns import as_date, day_bounds, utc_day
from store.engagement import CLICK, OPEN, TRACKED_SEND, EngagementEvent, TrackedCampaign
from store.volume import SendLog

KEYS = ("day", "campaign", "provider")
RATES = ("open_human", "open_all", "click_human", "click_all")  # the names Rates.rate takes
# score dimension -> the send-log column that names its entity
DIMENSION_COLUMNS = {"sending_domain": SendLog.sending_domain, "sending_ip": SendLog.sending_ip,
                     "provider": SendLog.provider, "campaign": SendLog.campaign}


@dataclass
class Rates:
    day: date | None
    campaign: str | None
    provider: str | None
    sent: int = 0
    opened_human: int = 0  # messages
    opened_all: int = 0
    clicked_human: int = 0
    clicked_all: int = 0
    opens_human: int = 0  # hits
    opens_all: int = 0
    clicks_human: int = 0
    clicks_all: int = 0

    def rate(self, name: str) -> float | None:
        """open_human, open_all, click_human or click_all: messages / sent (None without sends)."""
        kind, who = name.split("_")
        return getattr(self, ("opened_" if kind == "open" else "clicked_") + who) / self.sent if self.sent else None

    def add(self, other: "Rates") -> None:
        for f in fields(self)[3:]:
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def rates(session: Session, first: date, last: date, by: tuple[str, ...] = KEYS,
          where: Iterable[Any] = ()) -> list[Rates]:
    """The rates of the messages sent from `first` to `last` (UTC days), one row per value of
    the `by` keys (day, campaign, provider; () for one total row). `where` narrows the sends."""
    dialect = session.get_bind().dialect.name
    lo, hi = day_bounds(first, last)
    day = utc_day(SendLog.sent_at, dialect)
    cell = (day, SendLog.campaign, SendLog.provider)
    base = and_(SendLog.result == "sent", TRACKED_SEND, SendLog.sent_at >= lo, SendLog.sent_at < hi, *where)
    cells: dict[tuple, Rates] = {}

    def at(d, campaign, provider) -> Rates:
        key = (as_date(d), campaign, provider)
        if key not in cells:
            cells[key] = Rates(*key)
        return cells[key]

    for d, campaign, provider, n in session.execute(
            select(*cell, func.count()).select_from(SendLog).join(TrackedCampaign, base).group_by(*cell)):
        at(d, campaign, provider).sent = n
    e = EngagementEvent
    human = e.machine.is_(False)
    for d, campaign, provider, kind, *counts in session.execute(  # messages, then hits: all and human
            select(*cell, e.kind, func.count(distinct(e.send_id)), func.count(distinct(case((human, e.send_id)))),
                   func.count(), func.count(case((human, 1))))
            .select_from(e).join(SendLog, SendLog.id == e.send_id).join(TrackedCampaign, base)
            .group_by(*cell, e.kind)):
        row = at(d, campaign, provider)
        if kind == OPEN:
            row.opened_all, row.opened_human, row.opens_all, row.opens_human = counts
        elif kind == CLICK:
            row.clicked_all, row.clicked_human, row.clicks_all, row.clicks_human = counts
    return regroup(cells.values(), by)


def regroup(rows: Iterable[Rates], by: tuple[str, ...]) -> list[Rates]:
    """`rows` summed to the `by` keys (some of the keys they are by), sorted. Every message
    belongs to one (day, campaign, provider): coarser rows are sums of those."""
    out: dict[tuple, Rates] = {}
    for row in rows:
        key = tuple(getattr(row, k) for k in by)
        if key not in out:
            out[key] = Rates(row.day if "day" in by else None, row.campaign if "campaign" in by else None,
                             row.provider if "provider" in by else None)
        out[key].add(row)
    return sorted(out.values(), key=lambda r: (r.day or date.min, r.campaign or "", r.provider or ""))


def trend(session: Session, day: date, dimension: str, key: str, window: int = 7) -> dict[str, Any] | None:
    """The human open and click rates of an entity's tracked mail in the `window` days ending
    on `day` and in the window before, with the all-hits rates beside them; None when it sent
    no tracked mail in either window."""
    if dimension == "all":
        where: list[Any] = []
    elif dimension in DIMENSION_COLUMNS:
        where = [DIMENSION_COLUMNS[dimension] == key]
    else:
        return None
    days = rates(session, day - timedelta(days=2 * window - 1), day, by=("day",), where=where)
    if not days:
        return None
    start = day - timedelta(days=window - 1)

    def shape(rows: list[Rates]) -> dict[str, Any]:
        [r] = regroup(rows, ()) or [Rates(None, None, None)]
        return {"sent": r.sent, **{name: _round(r.rate(name)) for name in RATES}}

    this, last = shape([r for r in days if r.day >= start]), shape([r for r in days if r.day < start])
    change = {name: round(this[name] - last[name], 4) if this[name] is not None and last[name] is not None else None
              for name in ("open_human", "click_human")}
    return {"window_days": window, "current": this, "previous": last, "change": change}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
