"""Alerts: the model and the one way to raise one (de-duplicated while it is open)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.models import Base, BigId
from store.timeparse import utc

SEVERITIES = ("info", "warning", "critical")


class Alert(Base):
    """A condition a person must look at. Open until resolved; raised again, it is updated."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rule: Mapped[str] = mapped_column(String(60))  # complaint_rate, hard_bounce_rate, block_spike, ...
    dimension: Mapped[str] = mapped_column(String(20))  # all, sending_domain, sending_ip, provider, campaign
    key: Mapped[str] = mapped_column(String(255))
    severity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10))  # open | resolved
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None]
    opened_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    times_seen: Mapped[int] = mapped_column(Integer, default=1)
    notified_at: Mapped[datetime | None]  # when it was last sent by e-mail / webhook

    __table_args__ = (Index(None, "status", "rule", "dimension", "key"), Index(None, "opened_at"))


def raise_alert(session: Session, *, rule: str, dimension: str, key: str, severity: str, message: str,
                now: datetime, details: dict[str, Any] | None = None) -> tuple[Alert, bool]:
    """Open an alert, or refresh the open one for the same (rule, dimension, key).

    Returns (alert, created). A refreshed alert keeps its id and opened_at; a higher severity
    replaces a lower one.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}")
    alert = session.scalars(select(Alert).where(Alert.status == "open", Alert.rule == rule,
                                                Alert.dimension == dimension, Alert.key == key)).first()
    if alert is None:
        alert = Alert(rule=rule, dimension=dimension, key=key, severity=severity, status="open",
                      message=message, details=details, opened_at=now, last_seen_at=now, times_seen=1)
        session.add(alert)
        session.flush()
        return alert, True
    lower = SEVERITIES.index(severity) < SEVERITIES.index(alert.severity)
    if SEVERITIES.index(severity) > SEVERITIES.index(alert.severity):
        alert.severity = severity
    if utc(now) >= utc(alert.last_seen_at):  # a past day judged again does not move it back
        alert.last_seen_at = now
        if not lower:  # the message says why the alert has its severity: the worst day's words stay
            alert.message, alert.details = message, details
    if utc(now) < utc(alert.opened_at):  # ... but an episode found to start earlier did
        alert.opened_at = now
    alert.times_seen += 1
    return alert, False


def resolve_alert(session: Session, alert: Alert, now: datetime) -> None:
    alert.status, alert.resolved_at = "resolved", now
