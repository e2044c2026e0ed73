"""Monthly partitions of the big event tables on PostgreSQL.

bounce_events, complaint_events (by occurred_at) and dmarc_records (by interval_begin) grow
without end: at a hundred million rows a single table's indexes no longer fit in memory,
and vacuum and index builds take hours. On PostgreSQL each is partitioned by month: the
rows of one month live in their own table with their own small indexes, a query over a
date range reads only the months it names, and old months can be detached or dropped
whole. Ids stay global (one sequence per table), so the id watermarks read new rows across
partitions; the primary key is (id, the time column), as PostgreSQL requires of a
partitioned table.

A DEFAULT partition takes a row whose month has no partition (a report dated years back, a
clock gone wrong): nothing is ever refused. `ensure_partitions` creates the months around
now ahead of time (`postwatch db upgrade` and the daily `partitions` job call it), and a
month created for rows already in DEFAULT takes them out of it in the same transaction.
SQLite has no partitions: there it does nothing.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timezone

from sqlalchemy import Connection, text

# table -> the time column it is partitioned by
PARTITIONED = {"bounce_events": "occurred_at", "complaint_events": "occurred_at",
               "dmarc_records": "interval_begin"}
MONTHS_AHEAD = 3
_PARTITION_NAME = re.compile(r"^(%s)_(default|p\d{6})$" % "|".join(PARTITIONED))


def is_partition(name: str) -> bool:
    """A partition's table name (the models know only the partitioned tables)."""
    return bool(_PARTITION_NAME.match(name))


def _month(d: date, add: int = 0) -> date:
    n = d.year * 12 + d.month - 1 + add
    return date(n // 12, n % 12 + 1, 1)


def _existing(conn: Connection, table: str) -> set[str]:
    return set(conn.scalars(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t"), {"t": table}))


def is_partitioned(conn: Connection, table: str) -> bool:
    return conn.scalar(text("SELECT relkind = 'p' FROM pg_class WHERE relname = :t "
                            "AND relnamespace = 'public'::regnamespace"), {"t": table}) is True


def add_month(conn: Connection, table: str, month: date) -> bool:
    """Create `table`'s partition for `month` unless it exists; True when created.

    Rows of that month already in the DEFAULT partition move into the new one first, so
    attaching it never fails on them.
    """
    name = f"{table}_p{month:%Y%m}"
    if name in _existing(conn, table):
        return False
    column = PARTITIONED[table]
    lo = datetime.combine(month, datetime.min.time(), timezone.utc)
    hi = datetime.combine(_month(month, 1), datetime.min.time(), timezone.utc)
    conn.execute(text(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'))
    conn.execute(text(
        f'WITH moved AS (DELETE FROM "{table}_default" WHERE {column} >= :lo AND {column} < :hi RETURNING *) '
        f'INSERT INTO "{name}" SELECT * FROM moved'), {"lo": lo, "hi": hi})
    conn.execute(text(f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" '
                      f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"))
    return True


def ensure_partitions(conn: Connection, today: date | None = None, months_ahead: int = MONTHS_AHEAD,
                      since: date | None = None, tables: tuple[str, ...] = tuple(PARTITIONED)) -> list[str]:
    """Create the months from `since` (default: last month) to `months_ahead` after today.

    Returns the partitions created. Does nothing on SQLite or on a table not partitioned.
    """
    if conn.dialect.name != "postgresql":
        return []
    today = today or datetime.now(timezone.utc).date()
    first = _month(since or today, 0 if since else -1)
    last = _month(today, months_ahead)
    made = []
    for table in tables:
        if not is_partitioned(conn, table):
            continue
        existing = _existing(conn, table)  # one look at the catalogue per table, not per month
        month = first
        while month <= last:
            name = f"{table}_p{month:%Y%m}"
            if name not in existing and add_month(conn, table, month):
                made.append(name)
            month = _month(month, 1)
    return made


def partition_table(conn: Connection, table: str, partitioned: bool = True) -> None:
    """Rebuild `table` as a partitioned table (or, `partitioned=False`, as a plain one) with the
    same columns, rows, indexes, foreign keys and id sequence (used by the migrations)."""
    from sqlalchemy import inspect

    column = PARTITIONED[table]
    old = f"{table}_rebuilt"
    insp = inspect(conn)
    indexes = insp.get_indexes(table)
    fks = insp.get_foreign_keys(table)
    first = conn.scalar(text(f"SELECT min({column}) FROM {table} WHERE {column} >= '2000-01-01'"))
    conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{old}"'))
    conn.execute(text(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE"))
    by = f" PARTITION BY RANGE ({column})" if partitioned else ""
    conn.execute(text(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS){by}'))
    if partitioned:
        conn.execute(text(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT'))
        ensure_partitions(conn, since=first.date() if first else None, tables=(table,))
    conn.execute(text(f'INSERT INTO "{table}" SELECT * FROM "{old}"'))
    conn.execute(text(f'DROP TABLE "{old}" CASCADE'))
    conn.execute(text(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id"))
    key = f"id, {column}" if partitioned else "id"
    conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT pk_{table} PRIMARY KEY ({key})'))
    for ix in indexes:
        cols = ", ".join(ix["column_names"])
        unique = "UNIQUE " if ix.get("unique") else ""
        conn.execute(text(f'CREATE {unique}INDEX "{ix["name"]}" ON "{table}" ({cols})'))
    for fk in fks:
        ondelete = (fk.get("options") or {}).get("ondelete")
        conn.execute(text(
            f'ALTER TABLE "{table}" ADD CONSTRAINT "{fk["name"]}" FOREIGN KEY ({", ".join(fk["constrained_columns"])}) '
            f'REFERENCES "{fk["referred_table"]}" ({", ".join(fk["referred_columns"])})'
            + (f" ON DELETE {ondelete}" if ondelete else "")))
