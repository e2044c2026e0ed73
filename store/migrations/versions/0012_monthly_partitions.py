"""Monthly partitions of bounce_events, complaint_events and dmarc_records on PostgreSQL

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26

See store/partitions.py. SQLite keeps plain tables: nothing changes there.
"""
from alembic import op

from store.partitions import PARTITIONED, partition_table

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in PARTITIONED:
        partition_table(bind, table)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in PARTITIONED:
        partition_table(bind, table, partitioned=False)
