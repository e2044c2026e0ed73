"""MTA logs: volume_imports.origin, log_lines, log_offsets

`postwatch ingest-log` adds the sends it reads in an MTA log to volume_imports, beside the
CSV imports, under an origin of its own ('log:postfix', 'log:powermta', 'log:kumomta'):
a CSV import replaces its counts, a log adds to its own. The lines already counted
(log_lines, by digest) and how far a followed file was read (log_offsets) are kept.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

OLD_KEY = ('day', 'sending_domain', 'sending_ip', 'provider', 'campaign')


def upgrade() -> None:
    with op.batch_alter_table('volume_imports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=40), server_default='csv', nullable=False))
        # op.f: the name as the naming convention made it (PostgreSQL keeps 63 characters of a
        # longer one, with a hash of the rest)
        batch_op.drop_constraint(batch_op.f('uq_volume_imports_day_sending_domain_sending_ip_provider_campaign'),
                                 type_='unique')
        batch_op.create_unique_constraint(
            batch_op.f('uq_volume_imports_day_sending_domain_sending_ip_provider_campaign_origin'),
            [*OLD_KEY, 'origin'])
    op.create_table(
        'log_lines',
        sa.Column('digest', sa.String(length=32), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('outcome', sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint('digest', name=op.f('pk_log_lines')),
    )
    op.create_index(op.f('ix_log_lines_day'), 'log_lines', ['day'], unique=False)
    op.create_table(
        'log_offsets',
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('device', sa.BigInteger(), nullable=False),
        sa.Column('inode', sa.BigInteger(), nullable=False),
        sa.Column('position', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('path', name=op.f('pk_log_offsets')),
    )


def downgrade() -> None:
    op.drop_table('log_offsets')
    op.drop_index(op.f('ix_log_lines_day'), table_name='log_lines')
    op.drop_table('log_lines')
    op.execute("DELETE FROM volume_imports WHERE origin <> 'csv'")
    with op.batch_alter_table('volume_imports', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('uq_volume_imports_day_sending_domain_sending_ip_provider_campaign_origin'), type_='unique')
        batch_op.create_unique_constraint(
            batch_op.f('uq_volume_imports_day_sending_domain_sending_ip_provider_campaign'), list(OLD_KEY))
        batch_op.drop_column('origin')
