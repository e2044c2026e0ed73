"""Turning the dates that reports carry into aware UTC datetimes."""
from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime


def parse_when(value: object) -> datetime | None:
    """ISO 8601, parsedmarc's "YYYY-MM-DD HH:MM:SS" (UTC), or an RFC 5322 date; else None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                dt = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
            if dt is None:
                return None
    return utc(dt)


def utc(dt: datetime | None) -> datetime | None:
    """An aware UTC datetime (SQLite hands back naive ones, which are UTC)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
