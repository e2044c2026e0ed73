"""Alembic environment: the engine comes from `store.engine` (never from alembic.ini)."""
from alembic import context
from sqlalchemy import text

from store.partitions import is_partition
from store.schema import metadata

config = context.config
engine = config.attributes["engine"]
# Processes starting together on one PostgreSQL database (collectors, web, scheduler) each
# upgrade it: one migrates while the others wait here, then find it up to date.
MIGRATION_LOCK = 0x706F7374  # pg_advisory_xact_lock key, "post"

with engine.begin() as connection:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    # the monthly partitions (PostgreSQL) are the store's, not the models': autogenerate skips them
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True,
                      include_name=lambda name, kind, _parent: kind != "table" or not is_partition(name))
    context.run_migrations()
