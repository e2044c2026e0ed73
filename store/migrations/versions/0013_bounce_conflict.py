"""bounce_events.conflict: where the receiver's words and the codes disagreed

A hard verdict needs the diagnostic and the status/reply codes to agree; when they do not,
the classifier settles for the soft side and says so here, so that `postwatch explain` can
show it and the analysis can count such bounces.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On PostgreSQL the partitioned parent passes a new column to every month.
    op.add_column('bounce_events', sa.Column('conflict', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.drop_column('conflict')
