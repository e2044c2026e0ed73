"""provider_stats: the mailbox providers' own figures (Google Postmaster Tools, Microsoft SNDS)

postmaster_stats (one metric of one domain on one day), postmaster_compliance (the state of
one bulk-sender requirement as read on a day), snds_activity (one row of SNDS's data export),
snds_ip_status (one range of SNDS's IP status list as read on a day).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'postmaster_stats',
        sa.Column('id', _ID, nullable=False),
        sa.Column('domain', sa.String(length=255), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('metric', sa.String(length=120), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('read_at', _WHEN, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_postmaster_stats')),
        sa.UniqueConstraint('domain', 'day', 'metric', name=op.f('uq_postmaster_stats_domain_day_metric')),
    )
    op.create_index(op.f('ix_postmaster_stats_day_metric'), 'postmaster_stats', ['day', 'metric'], unique=False)
    op.create_table(
        'postmaster_compliance',
        sa.Column('id', _ID, nullable=False),
        sa.Column('domain', sa.String(length=255), nullable=False),
        sa.Column('requirement', sa.String(length=60), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('reason', sa.String(length=80), nullable=True),
        sa.Column('subdomain', sa.Boolean(), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('read_at', _WHEN, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_postmaster_compliance')),
        sa.UniqueConstraint('domain', 'requirement', 'day',
                            name=op.f('uq_postmaster_compliance_domain_requirement_day')),
    )
    op.create_index(op.f('ix_postmaster_compliance_domain_day'), 'postmaster_compliance', ['domain', 'day'],
                    unique=False)
    op.create_table(
        'snds_activity',
        sa.Column('id', _ID, nullable=False),
        sa.Column('ip', sa.String(length=45), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('activity_start', _WHEN, nullable=False),
        sa.Column('activity_end', _WHEN, nullable=False),
        sa.Column('rcpt_commands', sa.BigInteger(), nullable=False),
        sa.Column('data_commands', sa.BigInteger(), nullable=False),
        sa.Column('recipients', sa.BigInteger(), nullable=False),
        sa.Column('filter_result', sa.String(length=10), nullable=False),
        sa.Column('complaint_rate', sa.Float(), nullable=True),
        sa.Column('complaint_rate_text', sa.String(length=20), nullable=False),
        sa.Column('trap_start', _WHEN, nullable=True),
        sa.Column('trap_end', _WHEN, nullable=True),
        sa.Column('trap_hits', sa.Integer(), nullable=False),
        sa.Column('sample_helo', sa.String(length=255), nullable=True),
        sa.Column('sample_mail_from', sa.String(length=320), nullable=True),
        sa.Column('comments', sa.Text(), nullable=True),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('read_at', _WHEN, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_snds_activity')),
        sa.UniqueConstraint('ip', 'activity_start', name=op.f('uq_snds_activity_ip_activity_start')),
    )
    op.create_index(op.f('ix_snds_activity_day_ip'), 'snds_activity', ['day', 'ip'], unique=False)
    op.create_table(
        'snds_ip_status',
        sa.Column('id', _ID, nullable=False),
        sa.Column('first_ip', sa.String(length=45), nullable=False),
        sa.Column('last_ip', sa.String(length=45), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('blocked', sa.Boolean(), nullable=False),
        sa.Column('details', sa.Text(), nullable=True),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('read_at', _WHEN, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_snds_ip_status')),
        sa.UniqueConstraint('first_ip', 'last_ip', 'day', name=op.f('uq_snds_ip_status_first_ip_last_ip_day')),
    )
    op.create_index(op.f('ix_snds_ip_status_day'), 'snds_ip_status', ['day'], unique=False)


def downgrade() -> None:
    for table in ('snds_ip_status', 'snds_activity', 'postmaster_compliance', 'postmaster_stats'):
        op.drop_table(table)
