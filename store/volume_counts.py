"""Adding send counts to `volume_imports` under an origin of one's own ('webhook:ses', ...):
each count adds to what that origin holds for its key (a CSV import replaces its own instead,
analysis/volume.py). The rollups take the difference (`rolled`), as for every import."""
from __future__ import annotations

import functools
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
    insert = upsert_insert(session)
    rows = [{"day": k[0], "sending_domain": k[1][:255], "sending_ip": k[2][:45], "provider": k[3][:40],
             "campaign": k[4][:255], "origin": origin[:40], "sent": n, "rolled": 0, "pending": True,
             "imported_at": now, "source": source} for k, n in sorted(counts.items()) if n]
    if rows:
        session.execute(_upsert(session.get_bind().dialect.name, insert), rows)
    return sum(r["sent"] for r in rows)


@functools.cache
def _upsert(dialect: str, insert: Any) -> Any:
    """The one statement, built once per back end and executed for many rows."""
    table = cast(Table, VolumeImport.__table__)
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=KEY, set_={"sent": table.c.sent + stmt.excluded.sent, "pending": True,
                                  "imported_at": stmt.excluded.imported_at, "source": stmt.excluded.source})
