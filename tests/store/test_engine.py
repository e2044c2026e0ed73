from sqlalchemy import inspect, text

from store.engine import current_version, get_engine, upgrade


def test_upgrade_creates_the_schema(database, tmp_path):
    """On SQLite, in a WAL file under var/; on PostgreSQL, in the test's database."""
    assert current_version(database) is None
    version = upgrade(database)
    assert version is not None and version == current_version(database)
    engine = get_engine(database)
    tables = set(inspect(engine).get_table_names())
    for table in ("inbound_messages", "bounce_events", "complaint_events", "dmarc_aggregate_reports",
                  "dmarc_records", "dmarc_failure_reports", "tls_reports", "tls_policies",
                  "tls_failure_details", "quarantine"):
        assert table in tables
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert (tmp_path / "var" / "postwatch.db").is_file()
    else:
        assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
    assert upgrade(database) == version  # idempotent


def test_dashboard_indexes_exist(store, database):
    insp = inspect(get_engine(database))
    bounce_ix = {tuple(ix["column_names"]) for ix in insp.get_indexes("bounce_events")}
    assert ("occurred_at",) in bounce_ix
    assert ("from_domain", "occurred_at") in bounce_ix
    assert ("recipient_domain", "occurred_at") in bounce_ix
    complaint_ix = {tuple(ix["column_names"]) for ix in insp.get_indexes("complaint_events")}
    assert ("source_ip",) in complaint_ix
    uq = insp.get_unique_constraints("dmarc_aggregate_reports")
    assert [c["column_names"] for c in uq] == [["org_name", "report_id", "domain", "begin", "end"]]


def test_models_match_the_migrations(store, database):
    """A model change without a migration fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from store.partitions import is_partition
    from store.schema import metadata

    with get_engine(database).connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": lambda name, kind, _p: (
            kind != "table" or not is_partition(name))})
        diff = compare_metadata(context, metadata)
    assert diff == []
