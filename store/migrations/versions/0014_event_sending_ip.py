"""bounce_events / complaint_events: sending_ip and attributed_by

The sending IP an event is attributed to (our IP that sent the message it reports on), and
which source decided it: send_log (the VERP token's send), received (a Received header of the
returned message showing one of [domains] sending_ips), diagnostic (the receiver's reply names
one of them), reporting_mta ([domains] mta_ips), source_ip (an ARF report's Source-IP).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

TABLES = ('bounce_events', 'complaint_events')


def upgrade() -> None:
    # On PostgreSQL the partitioned parent passes a new column to every month.
    for table in TABLES:
        op.add_column(table, sa.Column('sending_ip', sa.String(length=45), nullable=True))
        op.add_column(table, sa.Column('attributed_by', sa.String(length=20), nullable=True))
    # A complaint's Source-IP was its sending IP until now: keep what the rollups counted.
    op.execute("UPDATE complaint_events SET sending_ip = source_ip, attributed_by = 'source_ip' "
               "WHERE source_ip IS NOT NULL")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('attributed_by')
            batch_op.drop_column('sending_ip')
