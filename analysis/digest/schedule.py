"""Digest schedules and periods: what `reports.schedules` says, and which days a digest covers.

A schedule entry is one string, `PERIOD|CRON|TIMEZONE|RECIPIENTS|SCOPE`:

    "weekly|0 8 * * MON|Europe/Paris|ops@example.com boss@example.com|domain:example.com"

RECIPIENTS and SCOPE are lists separated by spaces, commas or semicolons (in the environment
variable, entries are separated by commas, so separate recipients with spaces there). SCOPE
may be empty (all mail) or name sending domains (`domain:D`) or campaigns (`campaign:C`).

Days are UTC days, as in the rollups. A digest covers complete days: a daily one the day
before the run's date (in the schedule's time zone), a weekly one the seven days ending
then, a monthly one the previous calendar month. The previous period is the one just before,
of the same kind. This module imports only the standard library.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

PERIODS = ("daily", "weekly", "monthly")
_SPLIT = re.compile(r"[\s,;]+")


class ScheduleError(ValueError):
    """A schedule entry that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Scope:
    """What a digest covers: all mail, some sending domains, or some campaigns."""

    domains: tuple[str, ...] = ()
    campaigns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | tuple[str, ...] | list[str] | None) -> "Scope":
        items = text if isinstance(text, (tuple, list)) else _SPLIT.split(text or "")
        domains, campaigns = [], []
        for item in (i.strip() for i in items):
            if not item or item in ("all", "global"):
                continue
            kind, sep, value = item.partition(":")
            if not sep or not value.strip():
                raise ScheduleError(f"scope {item!r} is not domain:DOMAIN or campaign:NAME")
            if kind == "domain":
                domains.append(value.strip().lower().rstrip("."))
            elif kind == "campaign":
                campaigns.append(value.strip())
            else:
                raise ScheduleError(f"scope {item!r} is not domain:DOMAIN or campaign:NAME")
        if domains and campaigns:
            raise ScheduleError("a digest's scope names sending domains or campaigns, not both "
                                "(the daily rollups count them separately)")
        return cls(tuple(dict.fromkeys(domains)), tuple(dict.fromkeys(campaigns)))

    @property
    def label(self) -> str:
        if self.domains:
            return ", ".join(self.domains)
        if self.campaigns:
            return "campaign " + ", ".join(self.campaigns)
        return "all mail"

    @property
    def text(self) -> str:
        return " ".join([f"domain:{d}" for d in self.domains] + [f"campaign:{c}" for c in self.campaigns])


@dataclass(frozen=True)
class Schedule:
    name: str  # the job's name: report.weekly (report.weekly.2 for a second weekly entry)
    period: str
    cron: str
    timezone: str
    recipients: tuple[str, ...]
    scope: Scope


def parse_schedule(entry: str, name: str | None = None) -> Schedule:
    parts = [p.strip() for p in entry.split("|")]
    if len(parts) not in (4, 5):
        raise ScheduleError(f"reports.schedules: {entry!r} is not PERIOD|CRON|TIMEZONE|RECIPIENTS|SCOPE "
                            "(e.g. \"weekly|0 8 * * MON|Europe/Paris|ops@example.com|domain:example.com\")")
    period, cron, tz, recipients = parts[:4]
    scope_text = parts[4] if len(parts) == 5 else ""
    if period not in PERIODS:
        raise ScheduleError(f"reports.schedules: {entry!r}: the period must be daily, weekly or monthly")
    if len(cron.split()) != 5:
        raise ScheduleError(f"reports.schedules: {entry!r}: {cron!r} is not a crontab line of 5 fields "
                            "(minute hour day month weekday)")
    _check_timezone(tz or "UTC", entry)
    rcpts = tuple(r for r in _SPLIT.split(recipients) if r)
    if not rcpts or any("@" not in r for r in rcpts):
        raise ScheduleError(f"reports.schedules: {entry!r}: give one or more recipient addresses")
    try:
        scope = Scope.parse(scope_text)
    except ScheduleError as exc:
        raise ScheduleError(f"reports.schedules: {entry!r}: {exc}") from None
    return Schedule(name or f"report.{period}", period, cron, tz or "UTC", rcpts, scope)


def parse_schedules(entries: tuple[str, ...]) -> list[Schedule]:
    """Every entry, named report.PERIOD, then report.PERIOD.2, ... for further ones of a period."""
    out: list[Schedule] = []
    seen: dict[str, int] = {}
    for entry in entries:
        period = entry.split("|", 1)[0].strip()
        seen[period] = seen.get(period, 0) + 1
        name = f"report.{period}" + (f".{seen[period]}" if seen[period] > 1 else "")
        out.append(parse_schedule(entry, name))
    return out


def _check_timezone(tz: str, entry: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"reports.schedules: {entry!r}: {tz!r} is not a time zone "
                            "(an IANA name such as Europe/Paris, or UTC)") from None


@dataclass(frozen=True)
class Period:
    kind: str  # daily | weekly | monthly
    start: date  # first day, inclusive
    end: date  # last day, inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> "Period":
        if self.kind == "monthly":
            end = self.start - timedelta(days=1)
            return Period(self.kind, end.replace(day=1), end)
        return Period(self.kind, self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    @property
    def label(self) -> str:
        if self.kind == "daily":
            return self.start.isoformat()
        if self.kind == "monthly" and self.start.day == 1:
            return self.start.strftime("%B %Y") + ("" if _month_end(self.start) == self.end
                                                   else f" (to {self.end.isoformat()})")
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


def _month_end(day: date) -> date:
    nxt = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return nxt - timedelta(days=1)


def period_for(kind: str, today: date, end: date | None = None) -> Period:
    """The period a digest run on `today` covers, or the one ending on `end` when given."""
    if kind not in PERIODS:
        raise ScheduleError(f"the period must be daily, weekly or monthly, not {kind!r}")
    if kind == "daily":
        last = end or today - timedelta(days=1)
        return Period(kind, last, last)
    if kind == "weekly":
        last = end or today - timedelta(days=1)
        return Period(kind, last - timedelta(days=6), last)
    if end is not None:
        return Period(kind, end.replace(day=1), end)
    last = today.replace(day=1) - timedelta(days=1)
    return Period(kind, last.replace(day=1), last)
