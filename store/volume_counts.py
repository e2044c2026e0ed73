"""Adding send counts to `volume_imports` under an origin of one's own ('webhook:ses', ...):
each count adds to what that origin holds for its key (a CSV import replaces its own instead,
analysis/volume.py). The rollups take the difference (`rolled`), as for every import."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Mapping, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from store.bulk import upsert_insert
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
    # one statement of many rows (one round trip), not one execution per row
    insert = upsert_insert(session)
    conn = session.connection()
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        conn.execute(_upsert(insert(VOLUME).values(rows[start:start + ROWS_PER_STATEMENT])))
    return sum(r["sent"] for r in rows)


VOLUME = cast(Table, VolumeImport.__table__)
ROWS_PER_STATEMENT = 500  # 11 parameters a row: well under SQLite's and PostgreSQL's limits


def _upsert(stmt: Any) -> Any:
    """Each row adds its count to the stored one (a key appears once per statement)."""
    return stmt.on_conflict_do_update(
        index_elements=KEY, set_={"sent": VOLUME.c.sent + stmt.excluded.sent, "pending": True,
                                  "imported_at": stmt.excluded.imported_at, "source": stmt.excluded.source})
