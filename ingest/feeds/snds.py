"""Microsoft SNDS (Smart Network Data Services) exports: the data export (`data.aspx`) and the
IP status list (`ipStatus.aspx`), both CSV.

Data export, one row per IP and activity period:
    IP address, activity start, activity end, RCPT commands, DATA commands, message
    recipients, filter result (GREEN / YELLOW / RED), complaint rate ("< 0.1%", "1.2%"),
    trap message period start, trap message period end, trap hits, sample HELO,
    sample MAIL FROM, comments
IP status list, one row per range:
    first IP, last IP, blocked (Yes / No), details

Times are read as SNDS writes them ("12/1/2026 3:00 PM", or ISO 8601) and taken as UTC. A
header row is skipped; a row that cannot be read is an error naming its line, and the
others are still read.
"""
from __future__ import annotations

import csv
import io
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from store.timeparse import parse_when

COLOURS = ("GREEN", "YELLOW", "RED")
DATA_COLUMNS = 14
STATUS_COLUMNS = 4
DATA, STATUS = "data", "ipstatus"


@dataclass(frozen=True)
class Activity:
    ip: str
    activity_start: datetime
    activity_end: datetime
    rcpt_commands: int
    data_commands: int
    recipients: int
    filter_result: str
    complaint_rate: float | None
    complaint_rate_text: str
    trap_start: datetime | None
    trap_end: datetime | None
    trap_hits: int
    sample_helo: str | None
    sample_mail_from: str | None
    comments: str | None


@dataclass(frozen=True)
class IpStatus:
    first_ip: str
    last_ip: str
    blocked: bool
    details: str | None


@dataclass
class SndsRead:
    kind: str = DATA
    activity: list[Activity] = field(default_factory=list)
    status: list[IpStatus] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


_FORMATS = ("%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y")


def _when(text: str, what: str, required: bool = True) -> datetime | None:
    text = text.strip()
    if not text:
        if required:
            raise ValueError(f"no {what}")
        return None
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    when = parse_when(text)
    if when is None:
        raise ValueError(f"{what} {text!r} is not a time (M/D/YYYY h:mm AM, or ISO 8601)")
    return when


def _count(text: str, what: str) -> int:
    text = text.strip().replace(",", "")
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(f"{what} {text!r} is not a count")
    return int(text)


def _ip(text: str, what: str = "IP address") -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"{what} {text.strip()!r} is not an IP address") from None


_RATE = re.compile(r"^(<|>)?\s*([0-9]+(?:\.[0-9]+)?)\s*%$")


def complaint_rate(text: str) -> float | None:
    """'< 0.1%' -> 0.001 (the bound SNDS gives), '1.5%' -> 0.015, '' -> None."""
    text = text.strip()
    if not text:
        return None
    match = _RATE.match(text)
    if not match:
        raise ValueError(f"complaint rate {text!r} is not a percentage (e.g. '< 0.1%' or '1.5%')")
    return float(match.group(2)) / 100


def _is_header(row: list[str]) -> bool:
    try:
        ipaddress.ip_address(row[0].strip())
        return False
    except ValueError:
        return "ip" in row[0].lower()


def _activity(row: list[str]) -> Activity:
    if len(row) < DATA_COLUMNS - 1:
        raise ValueError(f"{len(row)} columns, the data export has {DATA_COLUMNS}")
    row = row + [""] * (DATA_COLUMNS - len(row))
    colour = row[6].strip().upper()
    if colour not in COLOURS:
        raise ValueError(f"filter result {row[6].strip()!r} is not GREEN, YELLOW or RED")
    start, end = _when(row[1], "activity start"), _when(row[2], "activity end")
    assert start is not None and end is not None
    if end < start:
        raise ValueError("the activity ends before it starts")
    return Activity(
        ip=_ip(row[0]), activity_start=start, activity_end=end,
        rcpt_commands=_count(row[3], "RCPT commands"), data_commands=_count(row[4], "DATA commands"),
        recipients=_count(row[5], "message recipients"), filter_result=colour,
        complaint_rate=complaint_rate(row[7]), complaint_rate_text=row[7].strip(),
        trap_start=_when(row[8], "trap period start", required=False),
        trap_end=_when(row[9], "trap period end", required=False), trap_hits=_count(row[10], "trap hits"),
        sample_helo=row[11].strip() or None, sample_mail_from=row[12].strip() or None,
        comments=",".join(row[13:]).strip() or None)


def _status(row: list[str]) -> IpStatus:
    if len(row) < 3:
        raise ValueError(f"{len(row)} columns, the IP status list has {STATUS_COLUMNS}")
    first, last = _ip(row[0], "first IP"), _ip(row[1], "last IP")
    low, high = ipaddress.ip_address(first), ipaddress.ip_address(last)
    if low.version != high.version or high < low:
        raise ValueError(f"the range {first} - {last} is not a range")
    blocked = row[2].strip().lower()
    if blocked not in ("yes", "no", "true", "false"):
        raise ValueError(f"blocked {row[2].strip()!r} is not Yes or No")
    return IpStatus(first, last, blocked in ("yes", "true"), ",".join(row[3:]).strip() or None)


def kind_of(text: str) -> str:
    """DATA or STATUS, by the columns of the first row with content."""
    for row in csv.reader(io.StringIO(text)):
        if any(cell.strip() for cell in row):
            return STATUS if len(row) <= STATUS_COLUMNS else DATA
    return DATA


def read_text(text: str, where: str = "file", kind: str | None = None) -> SndsRead:
    out = SndsRead(kind=kind or kind_of(text))
    for line, row in enumerate(csv.reader(io.StringIO(text.lstrip("\ufeff"))), start=1):
        if not any(cell.strip() for cell in row):
            continue
        if _is_header(row):
            continue
        try:
            if out.kind == STATUS:
                out.status.append(_status(row))
            else:
                out.activity.append(_activity(row))
        except (ValueError, IndexError) as exc:
            out.errors.append(f"{where} line {line}: {exc}")
    return out
