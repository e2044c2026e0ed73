"""Volume, the denominators: the sender's send log, imported daily counts, and the cache of
which mailbox provider a recipient domain's mail goes to."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, BigId

# `queued`: written before the message leaves (its return path and unsubscribe link point at
# the row), replaced by the result; never counted as volume
SEND_RESULTS = ("queued", "sent", "deferred", "bounced", "suppressed", "failed")


class SendLog(Base):
    """One send attempt by postwatch's sender. `result` 'sent' = accepted by the receiving MX."""

    __tablename__ = "send_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sent_at: Mapped[datetime]
    recipient: Mapped[str] = mapped_column(String(320))
    recipient_domain: Mapped[str | None] = mapped_column(String(255))
    provider: Mapped[str | None] = mapped_column(String(40))
    sending_domain: Mapped[str | None] = mapped_column(String(255))
    sending_ip: Mapped[str | None] = mapped_column(String(45))
    campaign: Mapped[str | None] = mapped_column(String(255))
    message_id: Mapped[str | None] = mapped_column(String(998))
    dkim_selector: Mapped[str | None] = mapped_column(String(63))
    pool: Mapped[str | None] = mapped_column(String(63))
    tag: Mapped[str | None] = mapped_column(String(255))
    result: Mapped[str] = mapped_column(String(12))
    reply_code: Mapped[str | None] = mapped_column(String(3))
    reply: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "sent_at"), Index(None, "recipient"),
                      Index(None, "sending_domain", "sent_at"), Index(None, "campaign", "recipient"))


class VolumeImport(Base):
    """Daily send counts of an external sender (`postwatch volume import`, MTA logs read by
    `postwatch ingest-log`); '' = not given.

    `rolled` is how much of `sent` the rollups already hold, so a re-import that replaces a
    count adds only the difference.
    """

    __tablename__ = "volume_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    sending_domain: Mapped[str] = mapped_column(String(255))
    sending_ip: Mapped[str] = mapped_column(String(45))
    provider: Mapped[str] = mapped_column(String(40))
    campaign: Mapped[str] = mapped_column(String(255))
    sent: Mapped[int] = mapped_column(BigInteger)
    rolled: Mapped[int] = mapped_column(BigInteger, default=0)
    pending: Mapped[bool] = mapped_column(Boolean, index=True)
    imported_at: Mapped[datetime]
    source: Mapped[str | None] = mapped_column(Text)  # the file it came from
    # what kind of source: 'csv' (`postwatch volume import`, replaces), 'log:postfix' ... (adds)
    origin: Mapped[str] = mapped_column(String(40), default="csv", server_default="csv")

    __table_args__ = (UniqueConstraint("day", "sending_domain", "sending_ip", "provider", "campaign", "origin"),)


class RecipientDomain(Base):
    """The provider a recipient domain was found to use by its MX hosts, kept until `expires_at`."""

    __tablename__ = "recipient_domains"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    mx: Mapped[str | None] = mapped_column(Text)  # the MX hosts seen, comma-separated
    resolved_at: Mapped[datetime]
    expires_at: Mapped[datetime]
