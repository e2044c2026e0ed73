"""Monthly partitions of the event tables on PostgreSQL (store/partitions.py, migration 0012)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select, text

from store.models import BounceEvent, DmarcRecord
from store.partitions import PARTITIONED, add_month, ensure_partitions, is_partition
from tests.analysis.history_a import bounce, dmarc_report


@pytest.fixture
def pg_store(store, postgres_server):
    if postgres_server is None:
        pytest.skip("runs in the PostgreSQL pass (POSTWATCH_DATABASE__URL)")
    return store


def partition_of(session, table: str, row_id: int) -> str:
    return session.scalar(text(f"SELECT tableoid::regclass::text FROM {table} WHERE id = :id"), {"id": row_id})


def test_partition_names():
    assert is_partition("bounce_events_p202611") and is_partition("dmarc_records_default")
    assert not is_partition("bounce_events") and not is_partition("send_log_p202611")


def test_sqlite_has_plain_tables(store, postgres_server):
    if postgres_server is not None:
        pytest.skip("the SQLite behaviour")
    with store.begin() as s:
        assert ensure_partitions(s.connection()) == []
        assert bounce(s, date(2026, 5, 1)).id


def test_rows_land_in_their_month_and_far_dates_in_default(pg_store):
    with pg_store.begin() as s:
        ensure_partitions(s.connection(), today=date(2026, 5, 10))
        may = bounce(s, date(2026, 5, 1))
        old = bounce(s, date(2019, 3, 1))  # no partition for that month
        report = dmarc_report(s, date(2026, 6, 2), "example.com", [{"ip": "192.0.2.1"}])
    with pg_store() as s:
        assert partition_of(s, "bounce_events", may.id) == "bounce_events_p202605"
        assert partition_of(s, "bounce_events", old.id) == "bounce_events_default"
        record_id = s.scalar(select(DmarcRecord.id).where(DmarcRecord.report_id == report.id))
        assert partition_of(s, "dmarc_records", record_id) == "dmarc_records_p202606"
        # the models read across partitions as from one table
        assert s.get(BounceEvent, may.id).occurred_at == datetime(2026, 5, 1, 12, tzinfo=timezone.utc)


def test_a_new_month_takes_its_rows_out_of_default(pg_store):
    with pg_store.begin() as s:
        ids = [bounce(s, date(2019, 3, d)).id for d in (1, 2)] + [bounce(s, date(2019, 4, 1)).id]
    with pg_store.begin() as s:
        assert add_month(s.connection(), "bounce_events", date(2019, 3, 1)) is True
        assert add_month(s.connection(), "bounce_events", date(2019, 3, 1)) is False
    with pg_store() as s:
        assert [partition_of(s, "bounce_events", i) for i in ids] == [
            "bounce_events_p201903", "bounce_events_p201903", "bounce_events_default"]
        assert s.scalar(select(func.count()).select_from(BounceEvent)) == 3


def test_the_job_creates_the_coming_months(pg_store):
    from analysis.jobs import JobContext, all_jobs
    from postwatch.config import load

    job = {j.name: j for j in all_jobs()}["partitions"]
    ctx = JobContext(sessions=pg_store, settings=load(environ={}),
                     clock=lambda: datetime(2031, 1, 15, tzinfo=timezone.utc))
    assert job.run(ctx) == 3 * 5  # December 2030 to April 2031, for each table
    with pg_store() as s:
        names = set(s.scalars(text("SELECT relname FROM pg_class WHERE relname LIKE '%_p2031%'")))
    assert {f"{t}_p203104" for t in PARTITIONED} <= names
    assert job.run(ctx) == 0


def test_migration_keeps_rows_and_ids_both_ways(pg_store, database):
    """Down to plain tables and up to partitions again: the same rows, ids continuing."""
    from store.engine import _alembic_config, get_engine
    from alembic import command

    with pg_store.begin() as s:
        before = [bounce(s, date(2026, 5, d)).id for d in (1, 2, 3)]
    cfg = _alembic_config(get_engine(database))
    command.downgrade(cfg, "0011")
    with pg_store() as s:
        assert s.scalar(text("SELECT relkind FROM pg_class WHERE relname = 'bounce_events'")) == "r"
        assert list(s.scalars(select(BounceEvent.id).order_by(BounceEvent.id))) == before
    command.upgrade(cfg, "heads")
    with pg_store.begin() as s:
        assert s.scalar(text("SELECT relkind FROM pg_class WHERE relname = 'bounce_events'")) == "p"
        after = bounce(s, date(2026, 5, 4)).id
    assert after > max(before)
    with pg_store() as s:
        assert list(s.scalars(select(BounceEvent.id).order_by(BounceEvent.id))) == before + [after]
