"""committed_max_id: a watermark never passes over an id a transaction still holds."""
from __future__ import annotations

from datetime import date

import pytest

from store.models import BounceEvent
from store.watermark import committed_max_id
from tests.analysis.history_a import bounce


def test_sqlite_gives_the_highest_id(store, postgres_server):
    if postgres_server is not None:
        pytest.skip("the SQLite behaviour")
    with store.begin() as s:
        ids = [bounce(s, date(2026, 5, 1)).id for _ in range(3)]
    with store() as s:
        assert committed_max_id(s, BounceEvent.id) == max(ids)


def test_postgresql_waits_for_a_lower_id_still_uncommitted(store, postgres_server):
    """Writer A takes an id and holds its transaction open; writer B takes a higher id and
    commits. Reading up to B's id would skip A's row for ever, so no watermark is given
    until A ends; then the highest id comes, A's row below it."""
    if postgres_server is None:
        pytest.skip("runs in the PostgreSQL pass (POSTWATCH_DATABASE__URL)")
    with store.begin() as s:
        first = bounce(s, date(2026, 5, 1)).id
    a = store()
    low = bounce(a, date(2026, 5, 1)).id  # flushed, not committed
    with store.begin() as b:
        high = bounce(b, date(2026, 5, 1)).id
    assert first < low < high
    with store() as s:
        assert committed_max_id(s, BounceEvent.id, wait_seconds=0.3) is None
    a.commit()
    a.close()
    with store() as s:
        assert committed_max_id(s, BounceEvent.id, wait_seconds=5) == high


def test_rollups_count_a_row_committed_late(store, postgres_server, monkeypatch):
    """The rollups job run while a lower id is uncommitted reads nothing of the table that
    time, and everything the next time: no event is lost."""
    if postgres_server is None:
        pytest.skip("runs in the PostgreSQL pass (POSTWATCH_DATABASE__URL)")
    from datetime import datetime, timezone

    from sqlalchemy import func, select

    import analysis.rollups as rollups
    from store.rollups import Rollup

    monkeypatch.setattr(rollups, "committed_max_id",
                        lambda session, column: committed_max_id(session, column, wait_seconds=0.3))
    now = datetime(2026, 5, 2, tzinfo=timezone.utc)
    a = store()
    bounce(a, date(2026, 5, 1))
    with store.begin() as b:
        bounce(b, date(2026, 5, 1))

    def bounced() -> int:
        with store() as s:
            return s.scalar(select(func.coalesce(func.sum(Rollup.value), 0)).where(
                Rollup.dimension == "all", Rollup.metric == "bounced"))

    with store.begin() as s:
        rollups.update(s, now=now)
    assert bounced() == 0  # not the committed one alone, which would move the watermark past A's
    a.commit()
    a.close()
    with store.begin() as s:
        rollups.update(s, now=now)
    assert bounced() == 2
