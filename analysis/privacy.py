"""Privacy: what is stored about an address (`subject_access`, GDPR article 15), forgetting
it (article 17), and purging raw messages after the retention period.

`forget` erases what postwatch holds about one address — its bounce and complaint events,
the raw bytes of the messages that named it — and keeps only a salted hash (HMAC-SHA256
keyed by privacy.salt) in the suppression list and its change log, so the address is never
mailed again while nothing readable of it is left. The inbound message rows stay, with their
raw bytes gone and a note saying why, so the counts that were built from them still add up.
The send log and the engagement events keep their rows (the volume and rates count them) with
the recipient replaced by the hash and the opener's user agent dropped.

`subject_access` gathers every row that names the address, in clear, as JSON-ready dicts:
after `forget` it finds nothing (the rows kept under the hash are listed apart, as counts).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import idna
from sqlalchemy import func, inspect, select, update
from sqlalchemy.orm import Session, sessionmaker

from analysis.jobs import JobContext, job
from store.addresses import HASH_PREFIX, address_hash, normalise, split_address
from store.engagement import EngagementEvent
from store.models import BounceEvent, ComplaintEvent, DmarcFailureReport, InboundMessage, Quarantine
from store.suppressions import (GLOBAL, Suppression, SuppressionChange, SuppressionEvidence, SuppressionHold,
                                add_suppression, erase_address, utc)
from store.volume import SendLog

BATCH = 1000


class PrivacyError(ValueError):
    """Erasure cannot go ahead; the message says what to set or do."""


@dataclass
class Forgotten:
    """What `forget` erased, per table, and the hash kept."""

    hash: str
    erased: dict[str, int] = field(default_factory=dict)
    suppressed: bool = False  # a new global suppression was added for the hash


def _spellings(address: str) -> tuple[set[str], set[str]]:
    """The forms the address may be stored in (A-label and Unicode domain) and its domains."""
    local, domain = split_address(address)
    domains = {domain}
    try:
        domains.add(idna.decode(domain))
    except idna.IDNAError:
        pass
    return {f"{local}@{d}" for d in domains}, domains


def forget(session: Session, address: str, *, salt: str, now: datetime) -> Forgotten:
    """Erase `address` and keep it suppressed by its salted hash. Run in one transaction."""
    if not salt:
        raise PrivacyError("privacy.salt is not set: set it (POSTWATCH_PRIVACY__SALT) to a long random "
                           "secret and keep it; it keys the hash kept of erased addresses")
    now = utc(now)
    addr = normalise(address)
    digest = address_hash(addr, salt)
    spellings, domains = _spellings(addr)
    result = Forgotten(hash=HASH_PREFIX + digest)
    messages: set[int] = set()

    for model, name in ((BounceEvent, "bounce_events"), (ComplaintEvent, "complaint_events")):
        rows = session.execute(select(model.id, model.message_id).where(
            model.recipient_domain.in_(domains), func.lower(model.recipient).in_(spellings))).all()
        messages.update(r.message_id for r in rows)
        ids = [r.id for r in rows]
        for i in range(0, len(ids), BATCH):
            session.execute(model.__table__.delete().where(model.id.in_(ids[i:i + BATCH])))
        result.erased[name] = len(ids)

    failures = session.scalars(select(DmarcFailureReport).where(
        func.lower(DmarcFailureReport.original_rcpt_to).in_(spellings)
        | func.lower(DmarcFailureReport.original_mail_from).in_(spellings))).all()
    for report in failures:
        report.original_rcpt_to = report.original_mail_from = report.subject = report.detail = None
        messages.add(report.message_id)
    result.erased["dmarc_failure_reports"] = len(failures)

    messages |= _quarantined_naming(session, spellings)
    result.erased["raw_messages"] = _erase_raw(session, messages, f"raw bytes erased {now:%Y-%m-%d} "
                                               "(postwatch forget)", now, scrub=True)
    result.erased["send_log"] = _scrub_send_log(session, spellings, result.hash)
    result.erased["engagement_events"] = session.execute(
        update(EngagementEvent).where(func.lower(EngagementEvent.recipient).in_(spellings))
        .values(recipient=result.hash, user_agent=None).execution_options(synchronize_session=False)).rowcount
    result.erased.update(erase_address(session, addr, digest))
    # kept for good: a permanent global row is left as it is, a pause (one that expires) is replaced
    result.suppressed = add_suppression(session, result.hash, reason="erased", source="manual", now=now,
                                        scope=GLOBAL)[1]
    return result


def _needles(spellings: set[str]) -> list[bytes]:
    """The address as it may appear in raw bytes: plain, and as a VERP return path names it."""
    out = []
    for a in spellings:
        local, domain = split_address(a)
        out += [a.encode("utf-8", "replace"), f"+{local}={domain}@".encode("utf-8", "replace")]
    return out


def _quarantined_naming(session: Session, spellings: set[str]) -> set[int]:
    """Quarantined messages (they have no events to find them by) whose bytes name the address."""
    needles = _needles(spellings)
    found: set[int] = set()
    rows = session.execute(select(InboundMessage.id, InboundMessage.raw_zlib).join(
        Quarantine, Quarantine.message_id == InboundMessage.id).where(InboundMessage.raw_zlib.is_not(None)))
    for message_id, raw_zlib in rows:
        try:
            raw = zlib.decompress(raw_zlib).lower()
        except zlib.error:
            continue
        if any(n in raw for n in needles):
            found.add(message_id)
    return found


def _erase_raw(session: Session, ids: set[int], note: str, now: datetime, *, scrub: bool) -> int:
    """Drop the raw bytes of messages `ids` (and their file, if kept outside), leaving a note.

    With `scrub`, also the envelope and attribution (a VERP return path names the recipient).
    A quarantined message can no longer be parsed again: its quarantine row is closed.
    """
    done = 0
    ordered = sorted(ids)
    for i in range(0, len(ordered), BATCH):
        chunk = ordered[i:i + BATCH]
        for path in session.scalars(select(InboundMessage.raw_path).where(
                InboundMessage.id.in_(chunk), InboundMessage.raw_path.is_not(None))):
            Path(path).unlink(missing_ok=True)
        values = {"raw_zlib": None, "raw_path": None,
                  "error": func.coalesce(InboundMessage.error + "; ", "") + note}
        if scrub:
            values.update(envelope_from=None, envelope_to=None, origin=None, attribution=None)
        done += session.execute(update(InboundMessage).where(InboundMessage.id.in_(chunk)).values(**values)
                                .execution_options(synchronize_session=False)).rowcount
        session.execute(update(Quarantine).where(Quarantine.message_id.in_(chunk), Quarantine.released_at.is_(None))
                        .values(released_at=now, reason=Quarantine.reason + "; " + note)
                        .execution_options(synchronize_session=False))
    return done


def _scrub_send_log(session: Session, spellings: set[str], shown_hash: str) -> int:
    """The sender's log keeps its counts, with the recipient replaced by the hash."""
    if not inspect(session.connection()).has_table("send_log"):
        return 0
    return session.execute(update(SendLog).where(func.lower(SendLog.recipient).in_(spellings))
                           .values(recipient=shown_hash).execution_options(synchronize_session=False)).rowcount


# -- subject access ---------------------------------------------------------------------------

# what the inbound messages that name the address are shown by: never their bytes
MESSAGE_FIELDS = ("id", "sha256", "received_at", "source", "kind", "status", "envelope_from", "envelope_to",
                  "size", "error")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


def _row(obj: Any, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    names = fields or tuple(c.key for c in inspect(type(obj)).column_attrs)
    return {name: _plain(getattr(obj, name)) for name in names}


def subject_access(session: Session, address: str, *, salt: str = "", now: datetime) -> dict[str, Any]:
    """Every stored row that names `address` in clear, per table, as a JSON-ready dict.

    With `salt`, the rows kept under the address's hash (after `forget`) are counted apart,
    under `kept_as_hash`: they no longer name it, but they are about it.
    """
    addr = normalise(address)
    spellings, domains = _spellings(addr)
    out: dict[str, Any] = {"address": addr, "generated_at": utc(now).isoformat()}
    tables: dict[str, list[dict[str, Any]]] = {}
    messages: set[int] = set()

    tables["send_log"] = [_row(r) for r in session.scalars(
        select(SendLog).where(func.lower(SendLog.recipient).in_(spellings)).order_by(SendLog.id))]
    for model, name in ((BounceEvent, "bounce_events"), (ComplaintEvent, "complaint_events")):
        rows = session.scalars(select(model).where(model.recipient_domain.in_(domains),
                                                   func.lower(model.recipient).in_(spellings)).order_by(model.id)).all()
        messages.update(r.message_id for r in rows)
        tables[name] = [_row(r) for r in rows]
    tables["engagement_events"] = [_row(r) for r in session.scalars(
        select(EngagementEvent).where(func.lower(EngagementEvent.recipient).in_(spellings))
        .order_by(EngagementEvent.id))]
    failures = session.scalars(select(DmarcFailureReport).where(
        func.lower(DmarcFailureReport.original_rcpt_to).in_(spellings)
        | func.lower(DmarcFailureReport.original_mail_from).in_(spellings)).order_by(DmarcFailureReport.id)).all()
    messages.update(r.message_id for r in failures)
    tables["dmarc_failure_reports"] = [_row(r) for r in failures]
    for model, order in ((Suppression, Suppression.id), (SuppressionChange, SuppressionChange.cursor),
                         (SuppressionEvidence, SuppressionEvidence.id), (SuppressionHold, SuppressionHold.id)):
        tables[model.__tablename__] = [_row(r) for r in session.scalars(
            select(model).where(model.address.in_(spellings)).order_by(order))]
    messages |= _quarantined_naming(session, spellings)
    tables["inbound_messages"] = [_row(r, MESSAGE_FIELDS) for r in session.scalars(
        select(InboundMessage).where(InboundMessage.id.in_(sorted(messages))).order_by(InboundMessage.id))]
    out["tables"] = tables
    if salt:
        digest = address_hash(addr, salt)
        shown = HASH_PREFIX + digest
        out["kept_as_hash"] = {"hash": shown, "rows": {
            "suppressions": _count(session, Suppression.address_hash == digest),
            "suppression_changes": _count(session, SuppressionChange.address == shown),
            "send_log": _count(session, SendLog.recipient == shown),
            "engagement_events": _count(session, EngagementEvent.recipient == shown)}}
    return out


def _count(session: Session, where) -> int:
    return session.scalar(select(func.count()).where(where)) or 0


# -- retention --------------------------------------------------------------------------------

def purge_raw(sessions: sessionmaker[Session], *, older_than_days: int, now: datetime) -> int:
    """Drop the raw bytes of messages received more than `older_than_days` ago (0 = keep all)."""
    if older_than_days <= 0:
        return 0
    now = utc(now)
    cutoff = now - timedelta(days=older_than_days)
    note = f"raw bytes purged {now:%Y-%m-%d} (privacy.raw_retention_days = {older_than_days})"
    total = 0
    while True:
        with sessions.begin() as session:
            ids = session.scalars(select(InboundMessage.id).where(
                InboundMessage.received_at < cutoff,
                InboundMessage.raw_zlib.is_not(None) | InboundMessage.raw_path.is_not(None))
                .order_by(InboundMessage.id).limit(BATCH)).all()
            if not ids:
                return total
            total += _erase_raw(session, set(ids), note, now, scrub=False)


@job("retention", every=timedelta(hours=24), order=90)
def retention_job(ctx: JobContext) -> int:
    """Purge raw message bytes older than privacy.raw_retention_days."""
    return purge_raw(ctx.sessions, older_than_days=ctx.settings.privacy.raw_retention_days, now=ctx.clock())
