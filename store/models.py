"""The data model: SQLAlchemy 2.0 typed models, portable between SQLite and PostgreSQL.

Events are facts and are never edited; every fact points at the inbound message it came
from, so any figure can be traced back to raw bytes.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer,
                        LargeBinary, MetaData, String, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so migrations read the same on every back end.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

MESSAGE_STATUSES = ("parsed", "quarantined", "ignored")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[Any]: JSON}


class InboundMessage(Base):
    """One raw message (or report file) as received, stored once by its sha256."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(40))  # smtp | imap | file | sender
    origin: Mapped[str | None] = mapped_column(Text)  # file path, mailbox/UID, client address
    envelope_from: Mapped[str | None] = mapped_column(String(320))
    envelope_to: Mapped[list[Any] | None]
    size: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12))
    error: Mapped[str | None] = mapped_column(Text)
    raw_zlib: Mapped[bytes | None] = mapped_column(LargeBinary)  # the raw bytes, zlib-compressed
    raw_path: Mapped[str | None] = mapped_column(Text)  # or where they are kept instead
    attribution: Mapped[dict[str, Any] | None]

    __table_args__ = (Index(None, "kind", "status"),)


class Quarantine(Base):
    """A message that could not be parsed, with the reason; kept until re-processed."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id", ondelete="CASCADE"),
                                            unique=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    released_at: Mapped[datetime | None]

    message: Mapped[InboundMessage] = relationship()


class _Attributed:
    """Columns every bounce and complaint event carries about the returned message."""

    orig_message_id: Mapped[str | None] = mapped_column(String(998))
    from_domain: Mapped[str | None] = mapped_column(String(255))  # the sending domain
    feedback_id: Mapped[str | None] = mapped_column(String(255))
    list_id: Mapped[str | None] = mapped_column(String(255))
    campaign: Mapped[str | None] = mapped_column(String(255))
    verp_token: Mapped[str | None] = mapped_column(String(64))
    send_id: Mapped[int | None] = mapped_column(BigInteger)
    sending_ip: Mapped[str | None] = mapped_column(String(45))  # our IP that sent the original
    attributed_by: Mapped[str | None] = mapped_column(String(20))  # the source that named sending_ip


class BounceEvent(_Attributed, Base):
    """One recipient of one DSN, or one SMTP-time rejection seen by the sender."""

    __tablename__ = "bounce_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id", ondelete="CASCADE"),
                                            index=True)
    occurred_at: Mapped[datetime]
    recipient: Mapped[str | None] = mapped_column(String(320))
    recipient_domain: Mapped[str | None] = mapped_column(String(255))
    provider: Mapped[str | None] = mapped_column(String(40))
    action: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str | None] = mapped_column(String(16))
    reply_code: Mapped[str | None] = mapped_column(String(3))
    diagnostic: Mapped[str | None] = mapped_column(Text)
    remote_mta: Mapped[str | None] = mapped_column(String(255))
    reporting_mta: Mapped[str | None] = mapped_column(String(255))
    smtp_command: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(20))
    hard: Mapped[bool] = mapped_column(Boolean)
    category: Mapped[str] = mapped_column(String(12))
    rule: Mapped[str | None] = mapped_column(Text)
    conflict: Mapped[str | None] = mapped_column(Text)  # words and codes disagreed; how it was settled

    __table_args__ = (
        Index(None, "occurred_at"),
        Index(None, "from_domain", "occurred_at"),
        Index(None, "recipient_domain", "occurred_at"),
        Index(None, "recipient"),
        Index(None, "campaign", "occurred_at"),
    )


class ComplaintEvent(_Attributed, Base):
    """One ARF complaint report about one recipient."""

    __tablename__ = "complaint_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id", ondelete="CASCADE"),
                                            index=True)
    occurred_at: Mapped[datetime]
    feedback_type: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str | None] = mapped_column(String(320))
    recipient_domain: Mapped[str | None] = mapped_column(String(255))
    source_ip: Mapped[str | None] = mapped_column(String(45))
    reported_domain: Mapped[str | None] = mapped_column(String(255))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    original_mail_from: Mapped[str | None] = mapped_column(String(320))

    __table_args__ = (
        Index(None, "occurred_at"),
        Index(None, "from_domain", "occurred_at"),
        Index(None, "recipient_domain", "occurred_at"),
        Index(None, "source_ip"),
        Index(None, "recipient"),
    )


class DmarcAggregateReport(Base):
    """One DMARC aggregate (rua) report, deduplicated the way parsedmarc does."""

    __tablename__ = "dmarc_aggregate_reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id", ondelete="CASCADE"),
                                            index=True)
    org_name: Mapped[str] = mapped_column(String(255))
    org_email: Mapped[str | None] = mapped_column(String(320))
    report_id: Mapped[str] = mapped_column(String(255))
    domain: Mapped[str] = mapped_column(String(255))
    begin: Mapped[datetime]
    end: Mapped[datetime]
    policy: Mapped[dict[str, Any] | None]  # policy_published as parsedmarc gives it
    errors: Mapped[list[Any] | None]
    record_count: Mapped[int] = mapped_column(Integer)
    message_count: Mapped[int] = mapped_column(BigInteger)

    records: Mapped[list[DmarcRecord]] = relationship(back_populates="report",
                                                      cascade="all, delete-orphan")

    __table_args__ = (
        UniqueConstraint("org_name", "report_id", "domain", "begin", "end"),
        Index(None, "domain", "begin"),
    )


class DmarcRecord(Base):
    """One row of an aggregate report: a sending source and what happened to its mail."""

    __tablename__ = "dmarc_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("dmarc_aggregate_reports.id", ondelete="CASCADE"),
                                           index=True)
    interval_begin: Mapped[datetime]
    interval_end: Mapped[datetime]
    source_ip: Mapped[str] = mapped_column(String(45))
    source_country: Mapped[str | None] = mapped_column(String(2))
    source_reverse_dns: Mapped[str | None] = mapped_column(String(255))
    source_base_domain: Mapped[str | None] = mapped_column(String(255))
    count: Mapped[int] = mapped_column(BigInteger)
    disposition: Mapped[str | None] = mapped_column(String(20))
    dkim_aligned: Mapped[bool] = mapped_column(Boolean)
    spf_aligned: Mapped[bool] = mapped_column(Boolean)
    dmarc_pass: Mapped[bool] = mapped_column(Boolean)
    header_from: Mapped[str | None] = mapped_column(String(255))
    envelope_from: Mapped[str | None] = mapped_column(String(255))
    envelope_to: Mapped[str | None] = mapped_column(String(255))
    dkim_results: Mapped[list[Any] | None]
    spf_results: Mapped[list[Any] | None]
    policy_override_reasons: Mapped[list[Any] | None]

    report: Mapped[DmarcAggregateReport] = relationship(back_populates="records")

    __table_args__ = (
        Index(None, "interval_begin"),
        Index(None, "header_from", "interval_begin"),
        Index(None, "source_ip"),
    )


class DmarcFailureReport(Base):
    """One DMARC failure (ruf) report, RFC 6591 or a provider's plain-text shape."""

    __tablename__ = "dmarc_failure_reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id", ondelete="CASCADE"),
                                            unique=True)
    arrival_date: Mapped[datetime]
    feedback_type: Mapped[str] = mapped_column(String(40))
    source_ip: Mapped[str | None] = mapped_column(String(45))
    reported_domain: Mapped[str | None] = mapped_column(String(255))
    auth_failure: Mapped[str | None] = mapped_column(String(255))
    delivery_result: Mapped[str | None] = mapped_column(String(40))
    original_mail_from: Mapped[str | None] = mapped_column(String(320))
    original_rcpt_to: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None]

    __table_args__ = (Index(None, "arrival_date"), Index(None, "reported_domain", "arrival_date"),
                      Index(None, "source_ip"))


class TlsReport(Base):
    """One SMTP TLS report (RFC 8460)."""

    __tablename__ = "tls_reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id", ondelete="CASCADE"),
                                            index=True)
    organization_name: Mapped[str] = mapped_column(String(255))
    report_id: Mapped[str] = mapped_column(String(255))
    begin: Mapped[datetime]
    end: Mapped[datetime]
    contact_info: Mapped[str | None] = mapped_column(String(320))
    successful_sessions: Mapped[int] = mapped_column(BigInteger)
    failed_sessions: Mapped[int] = mapped_column(BigInteger)

    policies: Mapped[list[TlsPolicy]] = relationship(back_populates="report",
                                                     cascade="all, delete-orphan")

    __table_args__ = (UniqueConstraint("organization_name", "report_id"), Index(None, "begin"))


class TlsPolicy(Base):
    """One policy of a TLS report, with its session counts."""

    __tablename__ = "tls_policies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("tls_reports.id", ondelete="CASCADE"), index=True)
    policy_type: Mapped[str | None] = mapped_column(String(20))
    policy_domain: Mapped[str] = mapped_column(String(255))
    policy_strings: Mapped[list[Any] | None]
    mx_host_patterns: Mapped[list[Any] | None]
    successful_sessions: Mapped[int] = mapped_column(BigInteger)
    failed_sessions: Mapped[int] = mapped_column(BigInteger)

    report: Mapped[TlsReport] = relationship(back_populates="policies")
    failures: Mapped[list[TlsFailureDetail]] = relationship(back_populates="policy",
                                                            cascade="all, delete-orphan")

    __table_args__ = (Index(None, "policy_domain"),)


class TlsFailureDetail(Base):
    """Why some sessions of a TLS policy failed, and where."""

    __tablename__ = "tls_failure_details"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("tls_policies.id", ondelete="CASCADE"), index=True)
    result_type: Mapped[str] = mapped_column(String(60))
    sending_mta_ip: Mapped[str | None] = mapped_column(String(45))
    receiving_mx_hostname: Mapped[str | None] = mapped_column(String(255))
    receiving_mx_helo: Mapped[str | None] = mapped_column(String(255))
    receiving_ip: Mapped[str | None] = mapped_column(String(45))
    failed_sessions: Mapped[int] = mapped_column(BigInteger)
    additional_information: Mapped[str | None] = mapped_column(Text)
    failure_reason_code: Mapped[str | None] = mapped_column(String(255))

    policy: Mapped[TlsPolicy] = relationship(back_populates="failures")
