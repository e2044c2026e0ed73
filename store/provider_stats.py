"""The mailbox providers' own figures about our mail: Google Postmaster Tools and Microsoft SNDS.

They are facts someone else measured, read from files or the providers' APIs, one row per
figure and the day it is about. A figure read again (the same file imported twice, the daily
fetch asking for the last days again) replaces the one stored: never a second row.

- postmaster_stats: one value of one Postmaster Tools metric for one domain on one day
  (`spam_rate`, `auth_success_rate.spf`, `delivery_error_rate.permanent_error` ...);
- postmaster_compliance: the state of one bulk-sender requirement of one domain as read on
  one day (compliant / needs_work), so the history shows when a requirement changed;
- snds_activity: one row of SNDS's data export — one IP's activity period;
- snds_ip_status: one range of SNDS's IP status list as read on one day (blocked or not).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Iterable

from sqlalchemy import BigInteger, Boolean, Date, Float, Index, Integer, String, Text, UniqueConstraint, delete
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.bulk import upsert_insert
from store.models import Base, BigId


class PostmasterStat(Base):
    __tablename__ = "postmaster_stats"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    domain: Mapped[str] = mapped_column(String(255))
    day: Mapped[date] = mapped_column(Date)
    metric: Mapped[str] = mapped_column(String(120))  # postwatch's name of the metric and its filter
    value: Mapped[float] = mapped_column(Float)  # a rate as a fraction (0.001 = 0.1 %), or a count
    source: Mapped[str] = mapped_column(String(20))  # import | fetch
    read_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("domain", "day", "metric"), Index(None, "day", "metric"))


class PostmasterCompliance(Base):
    __tablename__ = "postmaster_compliance"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    domain: Mapped[str] = mapped_column(String(255))
    requirement: Mapped[str] = mapped_column(String(60))  # spf, dkim, dmarc_alignment, one_click_unsubscribe ...
    day: Mapped[date] = mapped_column(Date)  # the day the status was read
    state: Mapped[str] = mapped_column(String(20))  # compliant | needs_work | unspecified
    reason: Mapped[str | None] = mapped_column(String(80))  # the verdict's reason, when Google gives one
    subdomain: Mapped[bool] = mapped_column(Boolean, default=False)  # subdomainComplianceData, not the registrable domain's
    source: Mapped[str] = mapped_column(String(20))
    read_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("domain", "requirement", "day"), Index(None, "domain", "day"))


class SndsActivity(Base):
    __tablename__ = "snds_activity"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ip: Mapped[str] = mapped_column(String(45))
    day: Mapped[date] = mapped_column(Date)  # the date of activity_start
    activity_start: Mapped[datetime]
    activity_end: Mapped[datetime]
    rcpt_commands: Mapped[int] = mapped_column(BigInteger)
    data_commands: Mapped[int] = mapped_column(BigInteger)
    recipients: Mapped[int] = mapped_column(BigInteger)
    filter_result: Mapped[str] = mapped_column(String(10))  # GREEN | YELLOW | RED
    complaint_rate: Mapped[float | None] = mapped_column(Float)  # a fraction; "< 0.1%" is stored as 0.001 ...
    complaint_rate_text: Mapped[str] = mapped_column(String(20))  # ... and its text kept as SNDS wrote it
    trap_start: Mapped[datetime | None]
    trap_end: Mapped[datetime | None]
    trap_hits: Mapped[int] = mapped_column(Integer)
    sample_helo: Mapped[str | None] = mapped_column(String(255))
    sample_mail_from: Mapped[str | None] = mapped_column(String(320))
    comments: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))
    read_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("ip", "activity_start"), Index(None, "day", "ip"))


class SndsIpStatus(Base):
    __tablename__ = "snds_ip_status"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    first_ip: Mapped[str] = mapped_column(String(45))
    last_ip: Mapped[str] = mapped_column(String(45))
    day: Mapped[date] = mapped_column(Date)  # the day the list was read
    blocked: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))
    read_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("first_ip", "last_ip", "day"), Index(None, "day"))


def _upsert(session: Session, table, rows: list[dict[str, Any]], keys: list[str]) -> int:
    if not rows:
        return 0
    stmt = upsert_insert(session)(table)
    changing = [c.name for c in table.columns if c.name not in keys and c.name != "id"]
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in changing})
    for i in range(0, len(rows), 1000):
        session.execute(stmt, rows[i:i + 1000])
    return len(rows)


def put_postmaster_stats(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Store (domain, day, metric, value, source, read_at) rows; a figure already stored is replaced."""
    return _upsert(session, PostmasterStat.__table__, list(rows), ["domain", "day", "metric"])


def put_postmaster_compliance(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    return _upsert(session, PostmasterCompliance.__table__, list(rows), ["domain", "requirement", "day"])


def put_snds_activity(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    return _upsert(session, SndsActivity.__table__, list(rows), ["ip", "activity_start"])


def put_snds_ip_status(session: Session, rows: Iterable[dict[str, Any]], days: set[date]) -> int:
    """Store the IP status list as read on each of `days`: the list replaces what an earlier
    read of the same day held (a range no longer listed is gone from that day)."""
    rows = list(rows)
    if days:
        session.execute(delete(SndsIpStatus).where(SndsIpStatus.day.in_(sorted(days))))
    return _upsert(session, SndsIpStatus.__table__, rows, ["first_ip", "last_ip", "day"])
