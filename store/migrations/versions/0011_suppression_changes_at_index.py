"""suppression_changes: an index on `at`

The digests count the suppression changes of a period (adds and removes by reason); the
change log grows for ever, so that count reads a range of this index, not the whole table.

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-10
"""
from alembic import op

revision = '0011'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('suppression_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suppression_changes_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('suppression_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suppression_changes_at'))
