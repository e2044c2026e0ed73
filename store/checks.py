"""Results of the checks the analysis runs against the outside world, and its own run records.

- blocklist checks: one row per day, target (sending IP or domain) and zone, updated by each
  hourly check of that day (never a second row), so a day's listings can be read back and a
  new one noticed;
- posture checks: the authentication records of each sending domain and IP; a new row only
  when the result changed, so the history is the list of changes;
- alert deliveries: one row per alert, channel and notice (opened / escalated / resolved),
  pending until sent, so a failed delivery is retried at the next run instead of lost;
- job runs: start, end, rows written and error of every run of every analysis job.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, BigId

# unknown: the zone failed its test entry, refused the query (an error code), timed out or
# failed; rows written before it was introduced say `error` for the same
BLOCKLIST_STATUSES = ("listed", "clean", "unknown")
# unknown: the DNS did not answer (time-out, SERVFAIL); missing: NXDOMAIN or no such record
POSTURE_STATUSES = ("ok", "warning", "error", "missing", "unknown")


class BlocklistCheck(Base):
    """What one DNSBL/URIBL zone said about one sending IP or domain on one day (the last check)."""

    __tablename__ = "blocklist_checks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    dimension: Mapped[str] = mapped_column(String(20))  # sending_ip | sending_domain
    key: Mapped[str] = mapped_column(String(255))
    zone: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(8))  # listed | clean | unknown (at the last check)
    listed: Mapped[bool] = mapped_column(Boolean)  # listed at any check of the day
    answer: Mapped[str | None] = mapped_column(Text)  # the A record(s) and TXT returned
    error: Mapped[str | None] = mapped_column(Text)  # why it is unknown: test entry, refused, time-out
    first_checked_at: Mapped[datetime]
    checked_at: Mapped[datetime]
    listed_at: Mapped[datetime | None]  # first check of the day that found it listed
    checks: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (UniqueConstraint("day", "dimension", "key", "zone"),
                      Index(None, "dimension", "key", "zone", "day"))


class PostureCheck(Base):
    """One result of one authentication check (spf, dmarc, dkim:SELECTOR, ptr:IP, ...).

    The newest row of (subject, check) is the current result; `checked_at` moves with each
    check that finds the same thing, a different result is a new row.
    """

    __tablename__ = "posture_checks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subject: Mapped[str] = mapped_column(String(255))  # the sending domain, or the IP for ptr
    check: Mapped[str] = mapped_column(String(80))  # spf | dkim:SELECTOR | dmarc | mta_sts | tls_rpt | ptr
    status: Mapped[str] = mapped_column(String(8))  # ok | warning | error | missing | unknown
    summary: Mapped[str] = mapped_column(Text)  # one line a person reads
    detail: Mapped[dict[str, Any] | None]  # the record and what was found in it
    fingerprint: Mapped[str] = mapped_column(String(64))  # of status + detail: equal = unchanged
    first_seen_at: Mapped[datetime]
    checked_at: Mapped[datetime]

    __table_args__ = (Index(None, "subject", "check", "id"),)


class AlertDelivery(Base):
    """One notice of one alert on one channel; pending while `sent_at` is empty."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(10))  # email | webhook
    notice: Mapped[str] = mapped_column(String(10))  # opened | escalated | resolved
    severity: Mapped[str] = mapped_column(String(10))  # the alert's severity when queued
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("alert_id", "channel", "notice", "severity"),
                      Index(None, "sent_at"))


class JobRun(Base):
    """One run of one analysis job: when, how long, rows written, and the error if it failed."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job: Mapped[str] = mapped_column(String(60))
    trigger: Mapped[str] = mapped_column(String(20))  # analyze | scheduler
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    rows: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "job", "started_at"),)
