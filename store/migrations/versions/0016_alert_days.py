"""alert_days: the days the alert rules must judge, and when they last judged each

A backlog (a new install reading months of reports, a collector back after a day down, the
DMARC and TLS reports of a day that arrive the next) changes the rollups of past days; the
alerts job judges each such day, in order, as if it had run that day.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'alert_days',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('judged_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('day', name=op.f('pk_alert_days')),
    )


def downgrade() -> None:
    op.drop_table('alert_days')
