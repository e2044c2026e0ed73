"""Many rows into one table in one go: COPY on PostgreSQL (one INSERT of many VALUES for a
few rows, where COPY's extra round trips cost more), one executemany on SQLite.

For facts that come by the thousand (the records of DMARC aggregate reports), where the
ORM's and SQLAlchemy's bookkeeping per row costs more than the database's work. Rows are
written inside the session's transaction and hold what an ORM object would: each value goes
through its column type's own bind processor (on SQLite), or is sent as that processor
would send it (on PostgreSQL: a JSON column as json.dumps text, so None is JSON null; a NUL
in a text value as U+FFFD, as store.engine does for every other statement).
"""
from __future__ import annotations

import functools
import json
from typing import Any, Sequence

from sqlalchemy import JSON, String, Table, insert
from sqlalchemy.orm import Session

from store.engine import without_nul

FEW_ROWS = 100  # PostgreSQL: up to this many rows go in one INSERT ... VALUES, more by COPY


def upsert_insert(session: Session) -> Any:
    """The dialect's `insert` (SQLite's or PostgreSQL's), which has `on_conflict_do_nothing`
    and `on_conflict_do_update`."""
    return dialect_insert(session.get_bind().dialect.name)


def dialect_insert(name: str) -> Any:
    """`upsert_insert` for a back end by its name ("postgresql", else SQLite's)."""
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql as dialect
    else:
        from sqlalchemy.dialects import sqlite as dialect  # type: ignore[no-redef]
    return dialect.insert


@functools.lru_cache(maxsize=256)
def values_rows(width: int, n: int) -> str:
    """"(%s, ...), (%s, ...)": the VALUES of `n` rows of `width` parameters for psycopg,
    made once per shape (of the few a program uses)."""
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * n)


def insert_rows(session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert `rows` (tuples of values in `columns` order) into `table`."""
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    if dialect.name == "postgresql":
        as_json = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, JSON)]
        texts = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, String)]
        if len(rows) <= FEW_ROWS:
            _insert_values(conn, table, names, len(columns), as_json, texts, rows)
        else:
            _copy(conn, table, names, as_json, texts, rows)
    elif dialect.name == "sqlite":
        procs = [(i, p) for i, name in enumerate(columns)
                 if (p := table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None]
        if procs:
            processed = [list(row) for row in rows]
            for values in processed:
                for i, process in procs:
                    values[i] = process(values[i])
            rows = processed
        marks = ", ".join("?" * len(columns))
        conn.exec_driver_sql(f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({names}) "
                             f"VALUES ({marks})", [tuple(row) for row in rows])
    else:
        session.execute(insert(table), [dict(zip(columns, row)) for row in rows])


def _sendable(row: Sequence[Any], as_json: list[int], texts: list[int]) -> Sequence[Any]:
    """A row as PostgreSQL takes it: NUL in text replaced, JSON values as their text."""
    for i in texts:
        v = row[i]
        if type(v) is str and "\x00" in v:
            row = without_nul(row)
            break
    if as_json:
        row = list(row)
        for i in as_json:
            row[i] = json.dumps(row[i])
    return row


def _insert_values(conn, table: Table, names: str, width: int, as_json: list[int], texts: list[int],
                   rows: Sequence[Sequence[Any]]) -> None:
    values: list[Any] = []
    for row in rows:
        values.extend(_sendable(row, as_json, texts))
    conn.exec_driver_sql(f"INSERT INTO {conn.dialect.identifier_preparer.format_table(table)} ({names}) "
                         f"VALUES {values_rows(width, len(rows))}", tuple(values))


def _copy(conn, table: Table, names: str, as_json: list[int], texts: list[int], rows: Sequence[Sequence[Any]]) -> None:
    cursor = conn.connection.driver_connection.cursor()
    try:
        with cursor.copy(f"COPY {conn.dialect.identifier_preparer.format_table(table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(_sendable(row, as_json, texts))
    finally:
        cursor.close()
