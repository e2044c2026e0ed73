"""Opens and clicks of the integrated sender's tracked messages, one row per hit.

A hit names the send-log row its signed token names (who, which campaign, which sending
domain and IP); `machine` says it was not a person: an Apple Mail Privacy Protection proxy
or Gmail's image proxy fetching the pixel, a security scanner following the links (and
`machine_reason` says which). Rates are shown twice: human (machine false) and all.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import BigInteger, Index, SmallInteger, String, and_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.columns import json_list
from store.models import Base, BigId
from store.volume import SendLog

OPEN, CLICK = "open", "click"
MAX_LINKS = 32767  # link_index is a SmallInteger; links past this stay untracked


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


class TrackedCampaign(Base):
    """A campaign sent with tracking on, and the links of its template in index order.

    `/t/c/TOKEN/INDEX` redirects to `links[INDEX]` of the campaign of the token's send, and to
    nothing else. A later run of the campaign appends the links it adds; an index, once given,
    always names the same URL (the UTM tags included), so an old message's links keep working.
    """

    __tablename__ = "tracked_campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(255), unique=True)
    opens: Mapped[bool]
    clicks: Mapped[bool]
    links: Mapped[list[Any]]
    created_at: Mapped[datetime]  # the first tracked run: sends before it are not in its rates
    updated_at: Mapped[datetime]


# a send-log row joined to its TrackedCampaign: a send of a tracked campaign at or after its first
# tracked run (an earlier one had no pixel or tracked links, so it could not have drawn a hit)
TRACKED_SEND = and_(SendLog.campaign == TrackedCampaign.campaign, SendLog.sent_at >= TrackedCampaign.created_at)


def register_links(session: Session, campaign: str, urls: Iterable[str], *, opens: bool, clicks: bool,
                   now: datetime) -> dict[str, int]:
    """Record that `campaign` is tracked, append the `urls` it does not know yet to its link list,
    and return url -> index for every link it has (at most MAX_LINKS)."""
    query = select(TrackedCampaign).where(TrackedCampaign.campaign == campaign)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()  # two runs of one campaign at once append in turn
    row = session.scalars(query).first()
    if row is None:
        row = TrackedCampaign(campaign=campaign, opens=opens, clicks=clicks, links=[], created_at=now,
                              updated_at=now)
        session.add(row)
    links = list(json_list(row.links))
    known = set(links)
    for url in urls:
        if url not in known and len(links) < MAX_LINKS:
            links.append(url)
            known.add(url)
    if links != json_list(row.links) or row.opens != opens or row.clicks != clicks:
        row.links, row.opens, row.clicks, row.updated_at = links, opens or row.opens, clicks or row.clicks, now
    session.flush()
    return {url: i for i, url in enumerate(links)}


def campaign_links(session: Session, campaign: str) -> list[str]:
    """The link list of a tracked campaign, in index order ([] when it is not tracked)."""
    return json_list(session.scalar(select(TrackedCampaign.links).where(TrackedCampaign.campaign == campaign)))
