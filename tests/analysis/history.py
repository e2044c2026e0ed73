"""Hand-built event histories for the suppression and privacy tests: rows written straight
into the store, with exactly the fields the rules read."""
from __future__ import annotations

import hashlib
import itertools
import zlib
from datetime import datetime, timedelta, timezone

from ingest.bounce.rules import CATEGORY
from store.models import BounceEvent, ComplaintEvent, InboundMessage

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
_seq = itertools.count(1)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


class History:
    def __init__(self, sessions) -> None:
        self.sessions = sessions

    def message(self, raw: bytes = b"", *, kind: str = "bounce", status: str = "parsed",
                received_at: datetime = T0) -> int:
        n = next(_seq)
        raw = raw or f"Subject: dsn {n}\n\nbody {n}\n".encode()
        with self.sessions.begin() as s:
            msg = InboundMessage(sha256=hashlib.sha256(raw + str(n).encode()).hexdigest(), received_at=received_at,
                                 source="file", size=len(raw), kind=kind, status=status, raw_zlib=zlib.compress(raw))
            s.add(msg)
            s.flush()
            return msg.id

    def bounce(self, recipient: str, reason: str, at: datetime, *, sent: str | None = "<m1@send.example.com>",
               status: str | None = None, action: str = "failed", provider: str | None = None,
               hard: bool | None = None, send_id: int | None = None, message_id: int | None = None) -> int:
        category = CATEGORY[reason]
        if status is None:
            status = "5.0.0" if category == "hygiene" else "4.0.0"
        message_id = message_id or self.message(received_at=at)
        with self.sessions.begin() as s:
            ev = BounceEvent(message_id=message_id, occurred_at=at, recipient=recipient,
                             recipient_domain=recipient.rsplit("@", 1)[-1].lower(), provider=provider, action=action,
                             status=status, reply_code=status[0] + "50", reason=reason,
                             hard=hard if hard is not None else (category == "hygiene" and status.startswith("5")),
                             category=category, orig_message_id=sent, send_id=send_id)
            s.add(ev)
            s.flush()
            return ev.id

    def complaint(self, recipient: str | None, feedback_type: str, at: datetime, *,
                  from_domain: str | None = "send.example.com", send_id: int | None = None) -> int:
        message_id = self.message(kind="complaint", received_at=at)
        with self.sessions.begin() as s:
            ev = ComplaintEvent(message_id=message_id, occurred_at=at, feedback_type=feedback_type,
                                recipient=recipient,
                                recipient_domain=recipient.rsplit("@", 1)[-1].lower() if recipient else None,
                                from_domain=from_domain, send_id=send_id)
            s.add(ev)
            s.flush()
            return ev.id
