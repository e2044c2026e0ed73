"""Many rows into one table in one go: COPY on PostgreSQL, one executemany elsewhere.

For facts that come by the thousand (the records of DMARC aggregate reports), where the
ORM's bookkeeping per object costs more than the database's work. Rows are written inside
the session's transaction and hold what an ORM object would: a JSON column gets its value
as SQLAlchemy would bind it (json.dumps, so None is JSON null), every other column its
Python value.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from sqlalchemy import JSON, Table, insert
from sqlalchemy.orm import Session


def insert_rows(session: Session, table: Table, columns: Sequence[str], rows: list[Sequence[Any]]) -> None:
    """Insert `rows` (tuples of values in `columns` order) into `table`."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        session.execute(insert(table), [dict(zip(columns, row)) for row in rows])
        return
    as_json = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, JSON)]
    names = ", ".join(conn.dialect.identifier_preparer.quote(name) for name in columns)
    cursor = conn.connection.driver_connection.cursor()
    try:
        with cursor.copy(f"COPY {conn.dialect.identifier_preparer.format_table(table)} ({names}) FROM STDIN") as copy:
            if not as_json:
                for row in rows:
                    copy.write_row(row)
                return
            for row in rows:
                row = list(row)
                for i in as_json:
                    row[i] = json.dumps(row[i])
                copy.write_row(row)
    finally:
        cursor.close()
