"""The timestamps MTA logs start their lines with: classic syslog (no year, no zone) and
RFC 3339."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                      "Nov", "Dec"), start=1)}


def zone(name: str) -> tzinfo:
    """The zone `name` names ('UTC', 'Europe/Paris'); a ValueError that says what to write."""
    if name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}; write an IANA name such as UTC or Europe/Paris") from None


class SyslogYear:
    """The year of syslog timestamps, which carry none: the year that puts the first line at
    most a day after `reference` (the file's mtime), then one more each time the month goes
    back (December to January) from one line to the next."""

    def __init__(self, reference: datetime) -> None:
        self.reference = reference
        self.year: int | None = None
        self.month = 0

    def of(self, month: int, day: int) -> int:
        if self.year is None:
            year = self.reference.year
            try:
                first = datetime(year, month, min(day, 28), tzinfo=self.reference.tzinfo or timezone.utc)
            except ValueError:
                first = self.reference
            if first > self.reference + timedelta(days=1):
                year -= 1
            self.year = year
        elif month < self.month and self.month - month > 6:
            self.year += 1
        self.month = month
        return self.year


def rfc3339(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
