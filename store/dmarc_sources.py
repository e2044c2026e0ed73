"""What DMARC aggregate reports say about who sends as each From domain."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, BigId

SOURCE_CLASSES = ("authorised", "forwarder", "unknown")


class DmarcSource(Base):
    """One sending source (IP) of one From domain, with its totals and its class."""

    __tablename__ = "dmarc_sources"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    domain: Mapped[str] = mapped_column(String(255))  # the header From domain
    source_ip: Mapped[str] = mapped_column(String(45))
    base_domain: Mapped[str | None] = mapped_column(String(255))
    reverse_dns: Mapped[str | None] = mapped_column(String(255))
    first_seen: Mapped[date] = mapped_column(Date)
    last_seen: Mapped[date] = mapped_column(Date)
    messages: Mapped[int] = mapped_column(BigInteger)
    passed: Mapped[int] = mapped_column(BigInteger)  # DMARC pass
    aligned: Mapped[int] = mapped_column(BigInteger)  # DKIM aligned and passing
    spf_aligned: Mapped[int] = mapped_column(BigInteger)  # SPF aligned and passing
    forwarded: Mapped[int] = mapped_column(BigInteger)  # with a forwarding override reason
    source_class: Mapped[str] = mapped_column(String(12))
    classified_by: Mapped[str] = mapped_column(String(40))  # the rule that decided the class
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("domain", "source_ip"), Index(None, "domain", "first_seen"))
