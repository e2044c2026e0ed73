"""IP warm-up: a daily cap per sending IP that grows on a ramp, and providers on pause.

A new IP earns reputation by volume that grows slowly: on day N of the ramp
(`sender.warmup_start` is day 1) it may send `sender.warmup_ramp[N-1]` messages, counted from
the send log (what the receivers answered, `sent` or `bounced`, since 00:00 UTC). After the
last step there is no cap. A provider whose latest reputation grade (the `scores` rows of
dimension 'provider', written by the analysis) is `critical` gets nothing until it recovers:
mailing into a block only deepens it.

Which provider a recipient domain belongs to is the caller's to say (a callable): the
resolver lives in the analysis, a layer above this one.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.rollups import Score
from store.volume import SendLog

REACHED = ("sent", "bounced")  # what counts against the cap: the receiver saw it


@dataclass(frozen=True)
class Ramp:
    start: date | None
    caps: tuple[int, ...]

    @classmethod
    def from_config(cls, warmup_start: str, warmup_ramp: tuple[str, ...]) -> "Ramp":
        return cls(date.fromisoformat(warmup_start) if warmup_start else None, tuple(int(v) for v in warmup_ramp))

    def cap(self, day: date) -> int | None:
        """The cap of `day`, or None for no cap (no ramp, or past its end)."""
        if self.start is None or not self.caps:
            return None
        n = (day - self.start).days
        if n < 0:
            return self.caps[0]  # planned ahead: hold to the first step until it starts
        return self.caps[n] if n < len(self.caps) else None


def sent_today(session: Session, sending_ip: str, now: datetime) -> int:
    """Messages of `sending_ip` that reached a receiver since 00:00 UTC of `now`."""
    midnight = datetime.combine(now.astimezone(timezone.utc).date(), time(), tzinfo=timezone.utc)
    ip = SendLog.sending_ip == sending_ip if sending_ip else SendLog.sending_ip.is_(None)
    return session.scalar(select(func.count()).where(ip, SendLog.result.in_(REACHED),
                                                     SendLog.sent_at >= midnight)) or 0


def critical_providers(session: Session) -> set[str]:
    """Providers whose most recent score is graded `critical`."""
    latest = (select(Score.key, func.max(Score.day).label("day")).where(Score.dimension == "provider")
              .group_by(Score.key).subquery())
    rows = session.execute(select(Score.key, Score.grade).join(
        latest, (Score.key == latest.c.key) & (Score.day == latest.c.day)).where(Score.dimension == "provider"))
    return {key for key, grade in rows if grade == "critical"}


class Budget:
    """How many more messages this run may hand over from one sending IP today."""

    def __init__(self, ramp: Ramp, sending_ip: str, sent: int, now: datetime, paused: set[str]) -> None:
        self.cap = ramp.cap(now.astimezone(timezone.utc).date())
        self.sending_ip = sending_ip
        self.used = sent
        self.paused = paused

    @classmethod
    def load(cls, session: Session, ramp: Ramp, sending_ip: str, now: datetime) -> "Budget":
        return cls(ramp, sending_ip, sent_today(session, sending_ip, now), now, critical_providers(session))

    def refuse(self, provider: str | None) -> str | None:
        """Why the next message (to `provider`) must wait, or None when it may go."""
        if provider and provider in self.paused:
            return f"provider {provider} is paused: its reputation grade is critical"
        if self.cap is not None and self.used >= self.cap:
            return f"warm-up cap reached: {self.cap} messages today from {self.sending_ip or 'this sender'}"
        return None

    def take(self) -> None:
        self.used += 1

    def give_back(self) -> None:
        """A message counted but not seen by any receiver (deferred, failed)."""
        self.used -= 1
