"""send_log: the 'queued' result and an index on (campaign, recipient)

The sender writes a `queued` row before a message leaves (its return path and unsubscribe
link carry the row's id) and replaces it by the result; `result` is a plain string column, so
the new value needs no DDL. A re-run of a campaign looks its recipients up by campaign.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('send_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_send_log_campaign_recipient'), ['campaign', 'recipient'], unique=False)


def downgrade() -> None:
    op.execute("UPDATE send_log SET result = 'failed', reply = 'queued when the schema was downgraded' "
               "WHERE result = 'queued'")
    with op.batch_alter_table('send_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_send_log_campaign_recipient'))
