"""suppressions, change log, evidence, holds, watermarks

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('suppression_changes',
    sa.Column('cursor', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('op', sa.String(length=6), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('scope', sa.String(length=300), nullable=False),
    sa.Column('reason', sa.String(length=60), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('suppression_id', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('cursor', name=op.f('pk_suppression_changes')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('suppression_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suppression_changes_suppression_id'), ['suppression_id'], unique=False)

    op.create_table('suppression_evidence',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('bounce_event_id', sa.BigInteger(), nullable=False),
    sa.Column('message_key', sa.String(length=255), nullable=False),
    sa.Column('send_id', sa.BigInteger(), nullable=True),
    sa.Column('provider', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppression_evidence')),
    sa.UniqueConstraint('bounce_event_id', name=op.f('uq_suppression_evidence_bounce_event_id'))
    )
    with op.batch_alter_table('suppression_evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suppression_evidence_address_occurred_at'), ['address', 'occurred_at'], unique=False)

    op.create_table('suppression_holds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('provider', sa.String(length=40), nullable=False),
    sa.Column('bounce_event_id', sa.BigInteger(), nullable=False),
    sa.Column('held_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppression_holds')),
    sa.UniqueConstraint('address', name=op.f('uq_suppression_holds_address'))
    )
    with op.batch_alter_table('suppression_holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suppression_holds_provider'), ['provider'], unique=False)

    op.create_table('suppression_watermarks',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('last_id', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_suppression_watermarks'))
    )
    op.create_table('suppressions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=True),
    sa.Column('address_hash', sa.String(length=64), nullable=True),
    sa.Column('scope', sa.String(length=300), nullable=False),
    sa.Column('reason', sa.String(length=60), nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('event_table', sa.String(length=40), nullable=True),
    sa.Column('event_id', sa.BigInteger(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('removed_reason', sa.String(length=60), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppressions'))
    )
    with op.batch_alter_table('suppressions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suppressions_address_hash'), ['address_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_suppressions_address_scope'), ['address', 'scope'], unique=False)
        batch_op.create_index(batch_op.f('ix_suppressions_removed_at_expires_at'), ['removed_at', 'expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_suppressions_scope'), ['scope'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('suppressions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suppressions_scope'))
        batch_op.drop_index(batch_op.f('ix_suppressions_removed_at_expires_at'))
        batch_op.drop_index(batch_op.f('ix_suppressions_address_scope'))
        batch_op.drop_index(batch_op.f('ix_suppressions_address_hash'))

    op.drop_table('suppressions')
    op.drop_table('suppression_watermarks')
    with op.batch_alter_table('suppression_holds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suppression_holds_provider'))

    op.drop_table('suppression_holds')
    with op.batch_alter_table('suppression_evidence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suppression_evidence_address_occurred_at'))

    op.drop_table('suppression_evidence')
    with op.batch_alter_table('suppression_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suppression_changes_suppression_id'))

    op.drop_table('suppression_changes')
