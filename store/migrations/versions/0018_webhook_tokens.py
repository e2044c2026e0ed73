"""webhook_tokens: the Mailgun signature tokens already seen

A Mailgun signature covers a timestamp and a token, not the body: a token taken twice is a
replay, refused by every web process that shares the store.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'webhook_tokens',
        sa.Column('provider', sa.String(length=20), nullable=False),
        sa.Column('token', sa.String(length=128), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('provider', 'token', name=op.f('pk_webhook_tokens')),
    )
    op.create_index(op.f('ix_webhook_tokens_seen_at'), 'webhook_tokens', ['seen_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_webhook_tokens_seen_at'), table_name='webhook_tokens')
    op.drop_table('webhook_tokens')
