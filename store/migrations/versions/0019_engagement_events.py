"""engagement_events: the opens and clicks of tracked messages; tracked_campaigns: their links

One row per hit on the tracking pixel or a tracked link (`/t/...`), naming the send-log row
its signed token names; `machine` marks the hits of privacy proxies and link scanners. One
tracked_campaigns row per campaign sent with tracking on, with its template's links in index
order (the only places a tracked link may redirect to).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'engagement_events',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('send_id', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recipient', sa.String(length=320), nullable=True),
        sa.Column('recipient_domain', sa.String(length=255), nullable=True),
        sa.Column('provider', sa.String(length=40), nullable=True),
        sa.Column('campaign', sa.String(length=255), nullable=True),
        sa.Column('sending_domain', sa.String(length=255), nullable=True),
        sa.Column('link_index', sa.SmallInteger(), nullable=True),
        sa.Column('method', sa.String(length=8), nullable=False),
        sa.Column('user_agent', sa.String(length=255), nullable=True),
        sa.Column('ip_class', sa.String(length=40), nullable=True),
        sa.Column('machine', sa.Boolean(), nullable=False),
        sa.Column('machine_reason', sa.String(length=60), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_engagement_events')),
    )
    op.create_index(op.f('ix_engagement_events_occurred_at'), 'engagement_events', ['occurred_at'], unique=False)
    op.create_index(op.f('ix_engagement_events_send_id'), 'engagement_events', ['send_id'], unique=False)
    op.create_index(op.f('ix_engagement_events_recipient_occurred_at'), 'engagement_events',
                    ['recipient', 'occurred_at'], unique=False)
    op.create_index(op.f('ix_engagement_events_campaign_occurred_at'), 'engagement_events',
                    ['campaign', 'occurred_at'], unique=False)
    op.create_table(
        'tracked_campaigns',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('campaign', sa.String(length=255), nullable=False),
        sa.Column('opens', sa.Boolean(), nullable=False),
        sa.Column('clicks', sa.Boolean(), nullable=False),
        sa.Column('links', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tracked_campaigns')),
        sa.UniqueConstraint('campaign', name=op.f('uq_tracked_campaigns_campaign')),
    )


def downgrade() -> None:
    op.drop_table('tracked_campaigns')
    op.drop_table('engagement_events')
