"""Adding send counts to `volume_imports` under an origin of one's own ('webhook:ses', ...):
each count adds to what that origin holds for its key (a CSV import replaces its own instead,
analysis/volume.py). The rollups take the difference (`rolled`), as for every import."""
from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any, Mapping, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from store.bulk import dialect_insert, values_rows
from store.volume import VolumeImport

# (day, sending domain, sending IP, provider, campaign); '' = not given
CountKey = tuple[date, str, str, str, str]
KEY = ["day", "sending_domain", "sending_ip", "provider", "campaign", "origin"]


def add_counts(session: Session, counts: Mapping[CountKey, int], *, origin: str, now: datetime,
               source: str | None = None) -> int:
    """Add `counts` to the origin's rows (made when missing); returns the messages added."""
    merged: dict[tuple, int] = {}  # keys as stored (cut to the columns' lengths), in order
    for k, n in sorted(counts.items()):
        if n:
            key = (k[0], k[1][:255], k[2][:45], k[3][:40], k[4][:255])
            merged[key] = merged.get(key, 0) + n
    rows = [{"day": k[0], "sending_domain": k[1], "sending_ip": k[2], "provider": k[3], "campaign": k[4],
             "origin": origin[:40], "sent": n, "rolled": 0, "pending": True, "imported_at": now, "source": source}
            for k, n in merged.items()]
    conn = session.connection()
    if conn.dialect.name == "postgresql":  # one statement of many rows: one round trip
        for first in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[first:first + ROWS_PER_STATEMENT]
            conn.exec_driver_sql(_postgresql_upsert(len(chunk)),
                                 tuple(r[c] for r in chunk for c in COLUMNS))
    elif rows:  # SQLite: one executemany of the one statement, compiled once
        conn.execute(_sqlite_upsert(), rows)
    return sum(r["sent"] for r in rows)


VOLUME = cast(Table, VolumeImport.__table__)
COLUMNS = ("day", "sending_domain", "sending_ip", "provider", "campaign", "origin", "sent", "rolled", "pending",
           "imported_at", "source")
ROWS_PER_STATEMENT = 500  # 11 parameters a row: well under PostgreSQL's limit


@functools.cache
def _postgresql_upsert(n: int) -> str:
    """INSERT of `n` rows that adds each row's count to the stored one, as SQL text: built once
    per row count (SQLAlchemy would compile a statement of many VALUES anew each time)."""
    return (f"INSERT INTO volume_imports ({', '.join(COLUMNS)}) VALUES {values_rows(len(COLUMNS), n)} "
            f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET sent = volume_imports.sent + excluded.sent, "
            "pending = true, imported_at = excluded.imported_at, source = excluded.source")


@functools.cache
def _sqlite_upsert() -> Any:
    """Each row adds its count to the stored one (a key appears once per statement)."""
    stmt = dialect_insert("sqlite")(VOLUME)
    return stmt.on_conflict_do_update(
        index_elements=KEY, set_={"sent": VOLUME.c.sent + stmt.excluded.sent, "pending": True,
                                  "imported_at": stmt.excluded.imported_at, "source": stmt.excluded.source})
