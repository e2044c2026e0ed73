"""Opens and clicks of the integrated sender's tracked messages, one row per hit.

A hit names the send-log row its signed token names (who, which campaign, which sending
domain and IP); `machine` says it was not a person: an Apple Mail Privacy Protection proxy
or Gmail's image proxy fetching the pixel, a security scanner following the links (and
`machine_reason` says which). Rates are shown twice: human (machine false) and all.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, BigId

OPEN, CLICK = "open", "click"


class EngagementEvent(Base):
    __tablename__ = "engagement_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    send_id: Mapped[int] = mapped_column(BigInteger)  # send_log.id of the message
    kind: Mapped[str] = mapped_column(String(8))  # open | click
    occurred_at: Mapped[datetime]
    recipient: Mapped[str | None] = mapped_column(String(320))  # normalised, from the send log
    recipient_domain: Mapped[str | None] = mapped_column(String(255))
    provider: Mapped[str | None] = mapped_column(String(40))
    campaign: Mapped[str | None] = mapped_column(String(255))
    sending_domain: Mapped[str | None] = mapped_column(String(255))
    link_index: Mapped[int | None] = mapped_column(SmallInteger)  # a click: which link of the template
    method: Mapped[str] = mapped_column(String(8))  # GET | HEAD
    user_agent: Mapped[str | None] = mapped_column(String(255))
    ip_class: Mapped[str | None] = mapped_column(String(40))  # apple-mpp | google-proxy | private | other ...
    machine: Mapped[bool]
    machine_reason: Mapped[str | None] = mapped_column(String(60))

    __table_args__ = (Index(None, "occurred_at"), Index(None, "send_id"), Index(None, "recipient", "occurred_at"),
                      Index(None, "campaign", "occurred_at"))
