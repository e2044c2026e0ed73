"""Reading a table's new rows above a watermark, on SQLite and on PostgreSQL."""
from __future__ import annotations

import logging
import time

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def committed_max_id(session: Session, id_column, wait_seconds: float = 10.0) -> int | None:
    """The highest id of `id_column`'s table below which no id can still appear.

    On SQLite there is one writer at a time, so the highest id is that. On PostgreSQL ids are
    taken from a sequence when a row is inserted, and a transaction that took a lower id may
    commit after one that took a higher id: a watermark set at the highest visible id would
    pass over its rows for ever. So, having read the highest id M, this waits until every
    other transaction that was inserting into the table at that moment has ended (they hold
    its ROW EXCLUSIVE lock; any id at or below M not yet visible is one of theirs, and a
    transaction that starts later takes ids above M). The session's own transaction is not
    waited for: its rows are its own to read.

    Should those writers not end within `wait_seconds` (one holding its transaction open),
    None is returned: the caller reads nothing new this time, and catches up next time.
    """
    highest = session.scalar(select(func.max(id_column)))
    if session.get_bind().dialect.name != "postgresql" or highest is None:
        return highest
    table = id_column.table.name
    writers = set(session.scalars(_WRITERS, {"table": table}))
    deadline = time.monotonic() + wait_seconds
    while writers:
        if time.monotonic() > deadline:
            log.warning("%s: %d transaction(s) writing to it did not end within %ss; its new rows are "
                        "read next time", table, len(writers), wait_seconds)
            return None
        time.sleep(0.02)
        writers &= set(session.scalars(_WRITERS, {"table": table}))
    return highest


# the other transactions holding a table's ROW EXCLUSIVE lock (taken by INSERT, UPDATE, DELETE)
_WRITERS = text("SELECT virtualtransaction FROM pg_locks WHERE locktype = 'relation' "
                "AND relation = CAST(:table AS regclass) AND mode = 'RowExclusiveLock' AND granted "
                "AND pid <> pg_backend_pid()")
