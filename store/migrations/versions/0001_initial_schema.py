"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbound_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('origin', sa.Text(), nullable=True),
    sa.Column('envelope_from', sa.String(length=320), nullable=True),
    sa.Column('envelope_to', sa.JSON(), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('raw_zlib', sa.LargeBinary(), nullable=True),
    sa.Column('raw_path', sa.Text(), nullable=True),
    sa.Column('attribution', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_messages')),
    sa.UniqueConstraint('sha256', name=op.f('uq_inbound_messages_sha256'))
    )
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_messages_kind_status'), ['kind', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_messages_received_at'), ['received_at'], unique=False)

    op.create_table('bounce_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=True),
    sa.Column('recipient_domain', sa.String(length=255), nullable=True),
    sa.Column('provider', sa.String(length=40), nullable=True),
    sa.Column('action', sa.String(length=20), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.Column('reply_code', sa.String(length=3), nullable=True),
    sa.Column('diagnostic', sa.Text(), nullable=True),
    sa.Column('remote_mta', sa.String(length=255), nullable=True),
    sa.Column('reporting_mta', sa.String(length=255), nullable=True),
    sa.Column('smtp_command', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('hard', sa.Boolean(), nullable=False),
    sa.Column('category', sa.String(length=12), nullable=False),
    sa.Column('rule', sa.Text(), nullable=True),
    sa.Column('orig_message_id', sa.String(length=998), nullable=True),
    sa.Column('from_domain', sa.String(length=255), nullable=True),
    sa.Column('feedback_id', sa.String(length=255), nullable=True),
    sa.Column('list_id', sa.String(length=255), nullable=True),
    sa.Column('campaign', sa.String(length=255), nullable=True),
    sa.Column('verp_token', sa.String(length=64), nullable=True),
    sa.Column('send_id', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['inbound_messages.id'], name=op.f('fk_bounce_events_message_id_inbound_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bounce_events'))
    )
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bounce_events_campaign_occurred_at'), ['campaign', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_bounce_events_from_domain_occurred_at'), ['from_domain', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_bounce_events_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bounce_events_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_bounce_events_recipient'), ['recipient'], unique=False)
        batch_op.create_index(batch_op.f('ix_bounce_events_recipient_domain_occurred_at'), ['recipient_domain', 'occurred_at'], unique=False)

    op.create_table('complaint_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('feedback_type', sa.String(length=40), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=True),
    sa.Column('recipient_domain', sa.String(length=255), nullable=True),
    sa.Column('source_ip', sa.String(length=45), nullable=True),
    sa.Column('reported_domain', sa.String(length=255), nullable=True),
    sa.Column('user_agent', sa.String(length=255), nullable=True),
    sa.Column('original_mail_from', sa.String(length=320), nullable=True),
    sa.Column('orig_message_id', sa.String(length=998), nullable=True),
    sa.Column('from_domain', sa.String(length=255), nullable=True),
    sa.Column('feedback_id', sa.String(length=255), nullable=True),
    sa.Column('list_id', sa.String(length=255), nullable=True),
    sa.Column('campaign', sa.String(length=255), nullable=True),
    sa.Column('verp_token', sa.String(length=64), nullable=True),
    sa.Column('send_id', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['inbound_messages.id'], name=op.f('fk_complaint_events_message_id_inbound_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_complaint_events'))
    )
    with op.batch_alter_table('complaint_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_complaint_events_from_domain_occurred_at'), ['from_domain', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaint_events_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaint_events_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaint_events_recipient'), ['recipient'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaint_events_recipient_domain_occurred_at'), ['recipient_domain', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_complaint_events_source_ip'), ['source_ip'], unique=False)

    op.create_table('dmarc_aggregate_reports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('org_name', sa.String(length=255), nullable=False),
    sa.Column('org_email', sa.String(length=320), nullable=True),
    sa.Column('report_id', sa.String(length=255), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('begin', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('policy', sa.JSON(), nullable=True),
    sa.Column('errors', sa.JSON(), nullable=True),
    sa.Column('record_count', sa.Integer(), nullable=False),
    sa.Column('message_count', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['inbound_messages.id'], name=op.f('fk_dmarc_aggregate_reports_message_id_inbound_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dmarc_aggregate_reports')),
    sa.UniqueConstraint('org_name', 'report_id', 'domain', 'begin', 'end', name=op.f('uq_dmarc_aggregate_reports_org_name_report_id_domain_begin_end'))
    )
    with op.batch_alter_table('dmarc_aggregate_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dmarc_aggregate_reports_domain_begin'), ['domain', 'begin'], unique=False)
        batch_op.create_index(batch_op.f('ix_dmarc_aggregate_reports_message_id'), ['message_id'], unique=False)

    op.create_table('dmarc_failure_reports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('arrival_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('feedback_type', sa.String(length=40), nullable=False),
    sa.Column('source_ip', sa.String(length=45), nullable=True),
    sa.Column('reported_domain', sa.String(length=255), nullable=True),
    sa.Column('auth_failure', sa.String(length=255), nullable=True),
    sa.Column('delivery_result', sa.String(length=40), nullable=True),
    sa.Column('original_mail_from', sa.String(length=320), nullable=True),
    sa.Column('original_rcpt_to', sa.String(length=320), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['inbound_messages.id'], name=op.f('fk_dmarc_failure_reports_message_id_inbound_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dmarc_failure_reports')),
    sa.UniqueConstraint('message_id', name=op.f('uq_dmarc_failure_reports_message_id'))
    )
    with op.batch_alter_table('dmarc_failure_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dmarc_failure_reports_arrival_date'), ['arrival_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_dmarc_failure_reports_reported_domain_arrival_date'), ['reported_domain', 'arrival_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_dmarc_failure_reports_source_ip'), ['source_ip'], unique=False)

    op.create_table('quarantine',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['inbound_messages.id'], name=op.f('fk_quarantine_message_id_inbound_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine')),
    sa.UniqueConstraint('message_id', name=op.f('uq_quarantine_message_id'))
    )
    op.create_table('tls_reports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('organization_name', sa.String(length=255), nullable=False),
    sa.Column('report_id', sa.String(length=255), nullable=False),
    sa.Column('begin', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('contact_info', sa.String(length=320), nullable=True),
    sa.Column('successful_sessions', sa.BigInteger(), nullable=False),
    sa.Column('failed_sessions', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['inbound_messages.id'], name=op.f('fk_tls_reports_message_id_inbound_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tls_reports')),
    sa.UniqueConstraint('organization_name', 'report_id', name=op.f('uq_tls_reports_organization_name_report_id'))
    )
    with op.batch_alter_table('tls_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tls_reports_begin'), ['begin'], unique=False)
        batch_op.create_index(batch_op.f('ix_tls_reports_message_id'), ['message_id'], unique=False)

    op.create_table('dmarc_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('report_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('interval_begin', sa.DateTime(timezone=True), nullable=False),
    sa.Column('interval_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source_ip', sa.String(length=45), nullable=False),
    sa.Column('source_country', sa.String(length=2), nullable=True),
    sa.Column('source_reverse_dns', sa.String(length=255), nullable=True),
    sa.Column('source_base_domain', sa.String(length=255), nullable=True),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('disposition', sa.String(length=20), nullable=True),
    sa.Column('dkim_aligned', sa.Boolean(), nullable=False),
    sa.Column('spf_aligned', sa.Boolean(), nullable=False),
    sa.Column('dmarc_pass', sa.Boolean(), nullable=False),
    sa.Column('header_from', sa.String(length=255), nullable=True),
    sa.Column('envelope_from', sa.String(length=255), nullable=True),
    sa.Column('envelope_to', sa.String(length=255), nullable=True),
    sa.Column('dkim_results', sa.JSON(), nullable=True),
    sa.Column('spf_results', sa.JSON(), nullable=True),
    sa.Column('policy_override_reasons', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['report_id'], ['dmarc_aggregate_reports.id'], name=op.f('fk_dmarc_records_report_id_dmarc_aggregate_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dmarc_records'))
    )
    with op.batch_alter_table('dmarc_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dmarc_records_header_from_interval_begin'), ['header_from', 'interval_begin'], unique=False)
        batch_op.create_index(batch_op.f('ix_dmarc_records_interval_begin'), ['interval_begin'], unique=False)
        batch_op.create_index(batch_op.f('ix_dmarc_records_report_id'), ['report_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dmarc_records_source_ip'), ['source_ip'], unique=False)

    op.create_table('tls_policies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('report_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('policy_type', sa.String(length=20), nullable=True),
    sa.Column('policy_domain', sa.String(length=255), nullable=False),
    sa.Column('policy_strings', sa.JSON(), nullable=True),
    sa.Column('mx_host_patterns', sa.JSON(), nullable=True),
    sa.Column('successful_sessions', sa.BigInteger(), nullable=False),
    sa.Column('failed_sessions', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['tls_reports.id'], name=op.f('fk_tls_policies_report_id_tls_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tls_policies'))
    )
    with op.batch_alter_table('tls_policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tls_policies_policy_domain'), ['policy_domain'], unique=False)
        batch_op.create_index(batch_op.f('ix_tls_policies_report_id'), ['report_id'], unique=False)

    op.create_table('tls_failure_details',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('policy_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('result_type', sa.String(length=60), nullable=False),
    sa.Column('sending_mta_ip', sa.String(length=45), nullable=True),
    sa.Column('receiving_mx_hostname', sa.String(length=255), nullable=True),
    sa.Column('receiving_mx_helo', sa.String(length=255), nullable=True),
    sa.Column('receiving_ip', sa.String(length=45), nullable=True),
    sa.Column('failed_sessions', sa.BigInteger(), nullable=False),
    sa.Column('additional_information', sa.Text(), nullable=True),
    sa.Column('failure_reason_code', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['policy_id'], ['tls_policies.id'], name=op.f('fk_tls_failure_details_policy_id_tls_policies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tls_failure_details'))
    )
    with op.batch_alter_table('tls_failure_details', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tls_failure_details_policy_id'), ['policy_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tls_failure_details', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tls_failure_details_policy_id'))

    op.drop_table('tls_failure_details')
    with op.batch_alter_table('tls_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tls_policies_report_id'))
        batch_op.drop_index(batch_op.f('ix_tls_policies_policy_domain'))

    op.drop_table('tls_policies')
    with op.batch_alter_table('dmarc_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dmarc_records_source_ip'))
        batch_op.drop_index(batch_op.f('ix_dmarc_records_report_id'))
        batch_op.drop_index(batch_op.f('ix_dmarc_records_interval_begin'))
        batch_op.drop_index(batch_op.f('ix_dmarc_records_header_from_interval_begin'))

    op.drop_table('dmarc_records')
    with op.batch_alter_table('tls_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tls_reports_message_id'))
        batch_op.drop_index(batch_op.f('ix_tls_reports_begin'))

    op.drop_table('tls_reports')
    op.drop_table('quarantine')
    with op.batch_alter_table('dmarc_failure_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dmarc_failure_reports_source_ip'))
        batch_op.drop_index(batch_op.f('ix_dmarc_failure_reports_reported_domain_arrival_date'))
        batch_op.drop_index(batch_op.f('ix_dmarc_failure_reports_arrival_date'))

    op.drop_table('dmarc_failure_reports')
    with op.batch_alter_table('dmarc_aggregate_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dmarc_aggregate_reports_message_id'))
        batch_op.drop_index(batch_op.f('ix_dmarc_aggregate_reports_domain_begin'))

    op.drop_table('dmarc_aggregate_reports')
    with op.batch_alter_table('complaint_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_complaint_events_source_ip'))
        batch_op.drop_index(batch_op.f('ix_complaint_events_recipient_domain_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_complaint_events_recipient'))
        batch_op.drop_index(batch_op.f('ix_complaint_events_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_complaint_events_message_id'))
        batch_op.drop_index(batch_op.f('ix_complaint_events_from_domain_occurred_at'))

    op.drop_table('complaint_events')
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bounce_events_recipient_domain_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_bounce_events_recipient'))
        batch_op.drop_index(batch_op.f('ix_bounce_events_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_bounce_events_message_id'))
        batch_op.drop_index(batch_op.f('ix_bounce_events_from_domain_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_bounce_events_campaign_occurred_at'))

    op.drop_table('bounce_events')
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_messages_received_at'))
        batch_op.drop_index(batch_op.f('ix_inbound_messages_kind_status'))

    op.drop_table('inbound_messages')
