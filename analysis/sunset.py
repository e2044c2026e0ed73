"""Sunset of the disengaged: stop mailing recipients who no longer open or click.

Off by default (`sunset.enabled`). Only *tracked* sends are judged: send-log rows `sent` by a
campaign in `tracked_campaigns` (store/engagement.py), at or after that campaign's first
tracked run — a message without a pixel or tracked links could not have drawn an open. Only
*human* hits count as engagement (engagement_events with `machine` false, kind open or click):
an Apple privacy-proxy open or a link scanner's click is not a reader.

A recipient is sunset (scope `sunset`, source `sunset`, reason `sunset`) when, with no human
open or click since:
- `sends`: their last `sunset.sends` tracked messages (they had at least that many), or
- `days`:  their first tracked message reached them at least `sunset.days` days ago and
           nothing human came in the last `sunset.days` days.

Reversible: `postwatch suppression remove ADDRESS --scope sunset` (or the API's DELETE) lifts
it, and the rule then counts only what was sent after the removal, so the address gets a
fresh chance instead of being sunset again at the next run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from analysis.config import SunsetConfig
from analysis.jobs import JobContext, job
from store.addresses import HASH_PREFIX
from store.engagement import CLICK, OPEN, TRACKED_SEND, EngagementEvent, TrackedCampaign
from store.suppressions import SUNSET, Suppression, add_suppressions, in_force
from store.timeparse import utc
from store.volume import SendLog

log = logging.getLogger(__name__)
REASON = SUNSET


@dataclass(frozen=True)
class Verdict:
    address: str
    rule: str  # sends | days
    tracked_sends: int
    last_human: datetime | None
    since: datetime  # no human open or click after this

    def details(self) -> dict[str, Any]:
        return {"rule": self.rule, "tracked_sends": self.tracked_sends, "since": self.since.isoformat(),
                "last_human": self.last_human.isoformat() if self.last_human else None}


def judge(session: Session, config: SunsetConfig, now: datetime) -> list[Verdict]:
    """The recipients the rule would sunset now (whatever `enabled` says), by address."""
    now = utc(now)
    restart = dict(session.execute(select(Suppression.address, func.max(Suppression.removed_at)).where(
        Suppression.scope == SUNSET, Suppression.removed_at.is_not(None), Suppression.address.is_not(None),
        Suppression.removed_reason != "expired").group_by(Suppression.address)).all())
    already = set(session.scalars(select(Suppression.address).where(Suppression.scope == SUNSET, *in_force(now))))
    humans = dict(session.execute(select(EngagementEvent.recipient, func.max(EngagementEvent.occurred_at)).where(
        EngagementEvent.machine.is_(False), EngagementEvent.kind.in_((OPEN, CLICK)),
        EngagementEvent.recipient.is_not(None)).group_by(EngagementEvent.recipient)).all())
    sends = (select(SendLog.recipient, SendLog.sent_at)
             .join(TrackedCampaign, TRACKED_SEND)
             .where(SendLog.result == "sent", SendLog.sent_at <= now,
                    ~SendLog.recipient.startswith(HASH_PREFIX, autoescape=True))
             .order_by(SendLog.recipient, SendLog.sent_at.desc()).execution_options(yield_per=5000))
    out: list[Verdict] = []
    current, times = None, []
    for recipient, sent_at in session.execute(sends):
        if recipient != current:
            _decide(current, times, config, now, restart, already, humans, out)
            current, times = recipient, []
        times.append(utc(sent_at))
    _decide(current, times, config, now, restart, already, humans, out)
    return out


def _decide(address: str | None, times: list[datetime], config: SunsetConfig, now: datetime,
            restart: dict[str, datetime], already: set[str], humans: dict[str, datetime],
            out: list[Verdict]) -> None:
    """`times`: the address's tracked sends, newest first."""
    if address is None or address in already:
        return
    if address in restart:
        times = [t for t in times if t > utc(restart[address])]
    if not times:
        return
    last_human = utc(humans.get(address))
    if config.sends and len(times) >= config.sends:
        since = times[config.sends - 1]
        if last_human is None or last_human < since:
            out.append(Verdict(address, "sends", len(times), last_human, since))
            return
    if config.days:
        since = now - timedelta(days=config.days)
        if times[-1] <= since and (last_human is None or last_human < since):
            out.append(Verdict(address, "days", len(times), last_human, since))


def run(sessions: sessionmaker[Session], config: SunsetConfig, now: datetime) -> int:
    """Sunset the disengaged (when enabled); returns how many suppressions were added."""
    if not config.enabled:
        return 0
    with sessions.begin() as session:
        verdicts = judge(session, config, now)
        added = add_suppressions(session, [{"address": v.address, "reason": REASON, "details": v.details()}
                                           for v in verdicts], source="sunset", now=now, scope=SUNSET)
    if added:
        log.info("sunset: %d disengaged recipient(s) suppressed (scope sunset)", added)
    return added


def count(session: Session, now: datetime) -> int:
    """The sunset suppressions in force."""
    return session.scalar(select(func.count()).select_from(Suppression).where(
        Suppression.scope == SUNSET, *in_force(utc(now)))) or 0


@job("sunset", every=timedelta(days=1), order=35)
def sunset_job(ctx: JobContext) -> int:
    """Suppress recipients with no human open or click in their last tracked sends (sunset.enabled)."""
    config = getattr(ctx.settings, "sunset", None)
    return run(ctx.sessions, config, ctx.clock()) if config is not None else 0
