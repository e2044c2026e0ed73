"""The suppression list as files: export (CSV or JSON lines) and CSV import.

The CSV shape is the same both ways — `address,scope,reason,source,created_at,expires_at` —
so an export imports again unchanged (the source becomes `import`). An erased address is
written as its `hmac-sha256:` hash and imports as one.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

from sqlalchemy.orm import Session

from store.addresses import AddressError
from store.suppressions import Suppression, active_suppressions, add_suppression, feed_time, utc

EXPORT_COLUMNS = ("address", "scope", "reason", "source", "created_at", "expires_at")


def export_row(row: Suppression) -> dict[str, Any]:
    return {"address": row.shown_address, "scope": row.scope, "reason": row.reason, "source": row.source,
            "created_at": feed_time(row.created_at),
            "expires_at": feed_time(row.expires_at) if row.expires_at is not None else ""}


def export(session: Session, out: IO[str], fmt: str, now: datetime) -> int:
    """Write the suppressions in force to `out`; returns how many."""
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
    n = 0
    for row in session.scalars(active_suppressions(session, now).execution_options(yield_per=1000)):
        item = export_row(row)
        if writer is not None:
            writer.writerow(item)
        else:
            out.write(json.dumps(item) + "\n")
        n += 1
    return n


@dataclass
class ImportResult:
    added: int = 0
    already: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)


def _when(text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expires_at {text!r} is not an ISO date or time (e.g. 2027-01-31)") from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def import_csv(session: Session, fh: IO[str], now: datetime) -> ImportResult:
    """Add the rows of a CSV file with a header line; a row that cannot be read is reported
    with its line number and not added. Unknown columns are ignored."""
    result = ImportResult()
    reader = csv.DictReader(fh)
    header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    if "address" not in header:
        result.errors.append((1, "the first line must be a header naming at least the column 'address' "
                                 "(optional: scope, reason, expires_at)"))
        return result
    reader.fieldnames = header
    now = utc(now)
    for record in reader:
        line = reader.line_num
        if None in record:
            result.errors.append((line, f"{len(header) + len(record[None])} fields where the header has "
                                        f"{len(header)}"))
            continue
        address = (record.get("address") or "").strip()
        if not address:
            result.errors.append((line, "no address"))
            continue
        try:
            _, created = add_suppression(
                session, address, reason=(record.get("reason") or "").strip() or "import", source="import",
                now=now, scope=(record.get("scope") or "").strip() or "global",
                expires_at=_when(record.get("expires_at") or ""))
        except (AddressError, ValueError) as exc:
            result.errors.append((line, str(exc)))
            continue
        if created:
            result.added += 1
        else:
            result.already += 1
    return result
