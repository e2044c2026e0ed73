"""Bulk rows for the benchmarks' generated stores: executemany on SQLite, COPY on PostgreSQL.

The benchmarks write generated rows straight through the driver (the ORM would take far
longer than what they time). Timestamps are given as UTC text, `YYYY-MM-DD HH:MM:SS.ffffff`,
which is how SQLAlchemy keeps them on SQLite and what PostgreSQL reads in a UTC session.
Not store.bulk.insert_rows: that one writes inside an ORM session and passes every value
through its column type (SQLite's DateTime takes only datetime objects), which the generators'
text rows, a million at a time, do without.
"""
from __future__ import annotations

from typing import Iterable, Sequence


def is_postgres(conn) -> bool:
    """`conn` is a DBAPI connection: sqlite3's or psycopg's."""
    return type(conn).__module__.startswith("psycopg")


def insert_rows(conn, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Insert `rows` (tuples in `columns` order) into `table`; the caller commits."""
    names = ", ".join(f'"{c}"' for c in columns)
    cur = conn.cursor()
    if is_postgres(conn):
        cur.execute("SET TIME ZONE 'UTC'")
        with cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
    else:
        cur.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})', rows)
    cur.close()


def sync_ids(conn, *tables: str) -> None:
    """After rows were written with explicit ids: move PostgreSQL's id sequences past them."""
    if not is_postgres(conn):
        return
    cur = conn.cursor()
    for table in tables:
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT COALESCE(MAX(id), 0) + 1 FROM \"{table}\"), false)")
    cur.close()
