"""store.bulk.insert_rows: a few rows go in one INSERT of many VALUES on PostgreSQL, many by
COPY, one executemany on SQLite; every way stores the same values (JSON, NUL in text)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from store.bulk import FEW_ROWS, insert_rows
from store.engine import NUL_STANDIN
from store.suppressions import Suppression

COLUMNS = ["address", "scope", "reason", "source", "details", "created_at"]
WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("count", [1, FEW_ROWS, FEW_ROWS + 1])
def test_rows_are_stored_alike_however_many(store, count):
    rows = [(f"user{i}@example.com", "global", "hard\x00bounce" if i == 0 else "complaint", "manual",
             {"n": i, "list": [1, "two"]} if i % 2 == 0 else None, WHEN) for i in range(count)]
    with store.begin() as session:
        insert_rows(session, Suppression.__table__, COLUMNS, rows)
    with store() as session:
        got = session.execute(select(Suppression.address, Suppression.reason, Suppression.details,
                                     Suppression.created_at).order_by(Suppression.id)).all()
        nul = NUL_STANDIN if session.get_bind().dialect.name == "postgresql" else "\x00"
    assert len(got) == count
    assert [g.address for g in got] == [r[0] for r in rows]
    assert got[0].reason == f"hard{nul}bounce"
    assert [g.details for g in got] == [r[4] for r in rows]
    assert all(g.created_at.replace(tzinfo=timezone.utc) == WHEN for g in got)
