"""Reading the store's columns the same way on SQLite and PostgreSQL: the UTC day of a
timestamp in SQL and the moments a UTC day starts and ends, a day read back as a `date`, a JSON list column read back as a list.
The rollups, the DMARC intelligence and the dashboard all read them so."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Date, cast, func


def utc_day(column, dialect: str):
    """The UTC calendar day of a timestamp column, in SQL."""
    if dialect == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def day_start(d: date) -> datetime:
    """The first moment of the UTC day `d`."""
    return datetime.combine(d, time.min, tzinfo=timezone.utc)


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[start, end) of the UTC days `first` to `last`: the start of `first` and of the day after `last`."""
    return day_start(first), day_start(last + timedelta(days=1))


def as_date(value: Any) -> date:
    """A day as the database gives it back (a date, a datetime or 'YYYY-MM-DD...') as a date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def json_list(value: Any) -> list[Any]:
    """A JSON list column (a list already, or its text); [] for anything else."""
    if not value:
        return []
    if isinstance(value, list):
        return value
    try:
        out = json.loads(value)
    except (TypeError, ValueError):
        return []
    return out if isinstance(out, list) else []


def cut(value: Any, n: int) -> str | None:
    """`value` as text of at most `n` characters (a column's length); None stays None."""
    return None if value is None else str(value)[:n]
