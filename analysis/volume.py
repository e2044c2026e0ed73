"""Volume, the denominators of every rate.

Three sources: the send log that postwatch's sender writes (one row per attempt), the DMARC
aggregate reports (the volume each sending source had as the receivers saw it; counted into
the rollups as `dmarc.messages`), and daily send counts of external senders imported from
CSV with `postwatch volume import`:

    day,sending_domain,sending_ip,provider,campaign,sent
    2026-05-01,news.example.com,192.0.2.10,gmail.com,spring-sale,12000

`provider` may be a provider name (google, microsoft, ...) or a recipient domain, which is
mapped to its provider (the column may also be headed `recipient_domain`). Empty fields mean
"not given". Rows of one file with the same day and keys are added up; importing a day and
key again replaces the earlier count. A file with any bad row imports nothing: every error is
reported with its line number.
"""
from __future__ import annotations

import csv
import io
import ipaddress
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterable

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from analysis.providers import PROVIDERS, ProviderResolver
from store.columns import as_date, day_bounds, utc_day
from store.volume import SendLog, VolumeImport

COLUMNS = ("day", "sending_domain", "sending_ip", "provider", "campaign", "sent")
ALIASES = {"recipient_domain": "provider", "date": "day", "count": "sent", "domain": "sending_domain",
           "ip": "sending_ip"}

Key = tuple[date, str, str, str, str]  # day, sending domain, sending IP, provider, campaign


@dataclass
class ImportResult:
    rows: int = 0  # data lines read
    keys: int = 0  # distinct day/key rows written
    added: int = 0  # of those, new
    replaced: int = 0  # of those, replacing an earlier import
    errors: list[str] = field(default_factory=list)  # "line N: what is wrong"
    total_sent: int = 0


class VolumeError(ValueError):
    """The file cannot be read as a volume CSV at all."""


def read_rows(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """The data rows with their line numbers, and the errors of the header."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise VolumeError("the file is empty; expected a header line: " + ",".join(COLUMNS)) from None
    names = [ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    missing = [c for c in COLUMNS if c not in names]
    unknown = [h for h in names if h not in COLUMNS]
    if missing or unknown:
        problems = []
        if missing:
            problems.append("missing column(s) " + ", ".join(missing))
        if unknown:
            problems.append("unknown column(s) " + ", ".join(unknown))
        raise VolumeError(f"line 1: {'; '.join(problems)}; expected: " + ",".join(COLUMNS))
    rows = []
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(names):
            rows.append((line, {"__error__": f"{len(values)} fields, expected {len(names)}"}))
            continue
        rows.append((line, {n: v.strip() for n, v in zip(names, values)}))
    return rows, []


def _check(row: dict[str, str]) -> tuple[tuple[date, str, str, str, str, int] | None, list[str]]:
    errors = []
    if "__error__" in row:
        return None, [row["__error__"]]
    try:
        day = date.fromisoformat(row["day"])
    except ValueError:
        errors.append(f"day {row['day']!r} is not a date (YYYY-MM-DD)")
        day = None
    domain = row["sending_domain"].lower().strip(".")
    if domain and (" " in domain or "." not in domain or "@" in domain):
        errors.append(f"sending_domain {row['sending_domain']!r} is not a domain name")
    ip = row["sending_ip"]
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            errors.append(f"sending_ip {row['sending_ip']!r} is not an IP address")
    provider = row["provider"].lower().strip(".")
    if provider and " " in provider:
        errors.append(f"provider {row['provider']!r} is neither a provider name nor a domain")
    try:
        sent = int(row["sent"])
        if sent < 0:
            raise ValueError
    except ValueError:
        errors.append(f"sent {row['sent']!r} is not a whole number >= 0")
        sent = 0
    if errors or day is None:
        return None, errors
    return (day, domain, ip, provider, row["campaign"], sent), []


def import_csv(session: Session, text: str, *, providers: ProviderResolver, now: datetime,
               source: str | None = None) -> ImportResult:
    """Validate every row, then write all of them or, when any is bad, none."""
    result = ImportResult()
    rows, _ = read_rows(text)
    checked: list[tuple[int, tuple]] = []
    for line, row in rows:
        result.rows += 1
        values, errors = _check(row)
        result.errors.extend(f"line {line}: {e}" for e in errors)
        if values is not None:
            checked.append((line, values))
    if result.errors:
        return result
    names = set(PROVIDERS) | set(providers.extra_domains.values())
    to_map = {v[3] for _, v in checked if v[3] and v[3] not in names}
    mapping = providers.resolve_many(session, to_map) if to_map else {}
    totals: dict[Key, int] = {}
    for _line, (day, domain, ip, provider, campaign, sent) in checked:
        key = (day, domain, ip, mapping.get(provider, provider), campaign[:255])
        totals[key] = totals.get(key, 0) + sent
    _write(session, totals, now, source, result)
    return result


def _write(session: Session, totals: dict[Key, int], now: datetime, source: str | None,
           result: ImportResult) -> None:
    keys = list(totals)
    existing: dict[Key, VolumeImport] = {}
    cols = (VolumeImport.day, VolumeImport.sending_domain, VolumeImport.sending_ip, VolumeImport.provider,
            VolumeImport.campaign)
    for i in range(0, len(keys), 200):
        for row in session.scalars(select(VolumeImport).where(VolumeImport.origin == "csv",
                                                              tuple_(*cols).in_(keys[i:i + 200]))):
            existing[(row.day, row.sending_domain, row.sending_ip, row.provider, row.campaign)] = row
    for key, sent in totals.items():
        row = existing.get(key)
        if row is None:
            day, domain, ip, provider, campaign = key
            session.add(VolumeImport(day=day, sending_domain=domain, sending_ip=ip, provider=provider,
                                     campaign=campaign, sent=sent, rolled=0, pending=True, imported_at=now,
                                     source=source, origin="csv"))
            result.added += 1
        else:
            row.sent, row.pending, row.imported_at, row.source = sent, True, now, source
            result.replaced += 1
        result.total_sent += sent
    result.keys = len(totals)
    session.flush()


def imported(session: Session, start: date, end: date) -> Iterable[VolumeImport]:
    return session.scalars(select(VolumeImport).where(VolumeImport.day >= start, VolumeImport.day <= end)
                           .order_by(VolumeImport.day, VolumeImport.sending_domain))


def by_origin(session: Session, start: date, end: date) -> list[tuple[date, str, int]]:
    """The sends of each day by where they were counted from: 'send_log' (postwatch's own
    sender), 'csv' (`postwatch volume import`), 'log:postfix' ... (`postwatch ingest-log`),
    'webhook:ses' ... (ESP webhooks); (day, origin, sent), by day then origin."""
    out = [(d, o, int(n)) for d, o, n in session.execute(
        select(VolumeImport.day, VolumeImport.origin, func.sum(VolumeImport.sent))
        .where(VolumeImport.day >= start, VolumeImport.day <= end)
        .group_by(VolumeImport.day, VolumeImport.origin))]
    day = utc_day(SendLog.sent_at, session.get_bind().dialect.name)  # the UTC day, as the rollups count it
    lo, hi = day_bounds(start, end)
    for d, n in session.execute(select(day, func.count()).where(
            SendLog.result == "sent", SendLog.sent_at >= lo, SendLog.sent_at < hi).group_by(day)):
        out.append((as_date(d), "send_log", int(n)))
    return sorted(out)
