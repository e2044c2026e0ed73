"""Suppressions and their change log: the store functions every layer shares.

The analysis adds suppressions from events, the sender's HTTP blueprint serves the change
log as the suppression feed and adds unsubscribes, and the command line lists, adds and
removes. All of them call the functions here, so the feed sees every change.

A suppression is never edited into something else: removing one stamps `removed_at`, and a
stronger one for the same address and scope (permanent instead of expiring) replaces the
weaker row. Each add and remove writes one `SuppressionChange`, whose integer `cursor` only
grows: a consumer that asks for changes after the last cursor it saw misses nothing.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import BigInteger, Index, String, insert, or_, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.addresses import HASH_PREFIX, AddressError, address_hash, domain_of, is_hashed, normalise
from store.clock import utcnow
from store.models import Base, BigId
from store.timeparse import utc

SOURCES = ("bounce", "complaint", "unsubscribe", "manual", "import", "sunset")
GLOBAL = "global"
SUNSET = "sunset"  # the disengaged (analysis/sunset.py): not mailed, like global, until removed
TOPIC, FREQUENCY = "topic:", "frequency:"  # a topic opted out of; at most one message per N days
MAX_FREQUENCY_DAYS = 366
_TOPIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MAX_FEED_LIMIT = 10_000  # changes per page of the feed, at most
FEED_COLUMNS = ("cursor", "op", "address", "scope", "reason", "at")
_FEED_LOCK = 0x706F_7374_7761_7463  # PostgreSQL advisory lock that orders cursor commits


def is_topic_name(name: str) -> bool:
    """A topic's name as scope topic:NAME takes it: lower-case letters, digits, . _ -."""
    return bool(_TOPIC_NAME.match(name))


class ScopeError(ValueError):
    """A scope that is not global, domain:<sending domain>, campaign:<id>, topic:<name>,
    frequency:<N>d or sunset."""


class Suppression(Base):
    """Do not mail `address` within `scope` (until `expires_at`, when set), and why."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    address: Mapped[str | None] = mapped_column(String(320))  # normalised; NULL once erased
    address_hash: Mapped[str | None] = mapped_column(String(64))  # HMAC-SHA256 of an erased address
    # global | domain:<sending domain> | campaign:<id> | topic:<name> | frequency:<N>d | sunset
    scope: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(60))
    source: Mapped[str] = mapped_column(String(12))  # bounce | complaint | unsubscribe | manual | import | sunset
    event_table: Mapped[str | None] = mapped_column(String(40))  # bounce_events | complaint_events
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any] | None]  # how the rule decided: the events counted, thresholds
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    removed_at: Mapped[datetime | None]
    removed_reason: Mapped[str | None] = mapped_column(String(60))

    __table_args__ = (Index(None, "address", "scope"), Index(None, "address_hash"),
                      Index(None, "removed_at", "expires_at"), Index(None, "scope"))

    @property
    def shown_address(self) -> str:
        return self.address if self.address is not None else HASH_PREFIX + (self.address_hash or "")


class SuppressionChange(Base):
    """One change of the suppression list; `cursor` is the position in the feed."""

    __tablename__ = "suppression_changes"

    cursor: Mapped[int] = mapped_column(BigId, primary_key=True)
    op: Mapped[str] = mapped_column(String(6))  # add | remove
    address: Mapped[str] = mapped_column(String(320))  # or hmac-sha256:<hex> once erased
    scope: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime]
    suppression_id: Mapped[int | None] = mapped_column(BigInteger, index=True)

    # AUTOINCREMENT on SQLite: a cursor is never handed out twice; `at` for the digests' counts
    __table_args__ = (Index(None, "at"), {"sqlite_autoincrement": True})


class SuppressionEvidence(Base):
    """A soft bounce or a delivery the suppression rules counted, under the normalised address."""

    __tablename__ = "suppression_evidence"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(10))  # soft | delivered
    reason: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime]
    bounce_event_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    message_key: Mapped[str] = mapped_column(String(255))  # which sent message bounced
    send_id: Mapped[int | None] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(String(40))

    __table_args__ = (Index(None, "address", "occurred_at"),)


class SuppressionHold(Base):
    """A soft escalation held back while its provider has a mass blocking event."""

    __tablename__ = "suppression_holds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    provider: Mapped[str] = mapped_column(String(40), index=True)
    bounce_event_id: Mapped[int] = mapped_column(BigInteger)
    held_at: Mapped[datetime]


class SuppressionWatermark(Base):
    """The last event id a suppression pass has read, per event table."""

    __tablename__ = "suppression_watermarks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger)


# -- values -----------------------------------------------------------------------------------

def feed_time(dt: datetime) -> str:
    return utc(dt).isoformat(timespec="seconds").replace("+00:00", "Z")


def normalise_scope(scope: str | None) -> str:
    """'global', 'domain:<IDNA sending domain>', 'campaign:<id>', 'topic:<name>' (lower-case
    letters, digits, . _ -), 'frequency:<N>d' (at most one message per N days) or 'sunset';
    raises ScopeError."""
    value = (scope or GLOBAL).strip()
    if value.lower() in (GLOBAL, SUNSET):
        return value.lower()
    kind, sep, rest = value.partition(":")
    kind, rest = kind.strip().lower(), rest.strip()
    if sep and rest and kind == "domain":
        try:
            return "domain:" + domain_of(normalise(f"x@{rest}"))
        except AddressError:
            pass
    elif sep and rest and kind == "campaign":
        return f"campaign:{rest}"
    elif sep and kind == "topic" and is_topic_name(rest.lower()):
        return TOPIC + rest.lower()
    elif sep and kind == "frequency":
        days = frequency_days(FREQUENCY + rest.lower())
        if days is not None:
            return f"{FREQUENCY}{days}d"
    raise ScopeError(f"scope {scope!r} is not valid: use 'global', 'domain:<sending domain>', "
                     "'campaign:<id>', 'topic:<name>', 'frequency:<days>d' or 'sunset'")


def frequency_days(scope: str) -> int | None:
    """N of a 'frequency:<N>d' scope (1 to 366), or None for any other scope."""
    if not scope.startswith(FREQUENCY):
        return None
    digits = scope[len(FREQUENCY):].removesuffix("d")
    if not digits.isascii() or not digits.isdigit() or not 1 <= int(digits) <= MAX_FREQUENCY_DAYS:
        return None
    return int(digits)


def target(address: str) -> tuple[str | None, str | None]:
    """(normalised address, None), or (None, hex) for the shown form of an erased address."""
    if is_hashed(address.strip()):
        digest = address.strip()[len(HASH_PREFIX):].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise AddressError(f"{address!r} is not a valid {HASH_PREFIX} hash (64 hex digits)")
        return None, digest
    return normalise(address), None


def _who(address: str | None, digest: str | None):
    return Suppression.address == address if address is not None else Suppression.address_hash == digest


def _whom(address: str | None, digest: str | None, salt: str):
    """`_who`, and with `salt` also the hash an erased `address` is kept as."""
    who = [_who(address, digest)]
    if address is not None and salt:
        who.append(Suppression.address_hash == address_hash(address, salt))
    return or_(*who)


def in_force(now: datetime):
    return (Suppression.removed_at.is_(None),
            or_(Suppression.expires_at.is_(None), Suppression.expires_at > now))


def _outlasts(have: datetime | None, want: datetime | None) -> bool:
    """True when a suppression ending at `have` already covers one ending at `want`."""
    return have is None or (want is not None and utc(have) >= utc(want))


# -- writes -----------------------------------------------------------------------------------

def _lock_feed(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # cursors must become visible in order: one writer of the change log at a time
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FEED_LOCK})


def _log(session: Session, op: str, row: Suppression, reason: str, now: datetime) -> SuppressionChange:
    _lock_feed(session)
    change = SuppressionChange(op=op, address=row.shown_address, scope=row.scope, reason=reason[:60],
                               at=now, suppression_id=row.id)
    session.add(change)
    session.flush()
    return change


def add_suppression(session: Session, address: str, *, reason: str, source: str, now: datetime,
                    scope: str = GLOBAL, expires_at: datetime | None = None, event_table: str | None = None,
                    event_id: int | None = None, details: dict[str, Any] | None = None,
                    ) -> tuple[Suppression, bool]:
    """Suppress `address` in `scope`; returns (row, created).

    An address already suppressed as long or longer is left alone (created False). A
    stronger suppression (permanent, or expiring later) replaces the weaker row and is
    written to the change log again. `address` may be the `hmac-sha256:` form of an erased
    address. Raises AddressError / ScopeError / ValueError with a sentence.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}")
    if not reason or not reason.strip():
        raise ValueError("a suppression needs a reason")
    addr, digest = target(address)
    scope = normalise_scope(scope)
    now, expires_at = utc(now), utc(expires_at)
    if expires_at is not None and expires_at <= now:
        raise ValueError(f"expiry {expires_at:%Y-%m-%d %H:%M} is not in the future")
    rows = session.scalars(select(Suppression).where(_who(addr, digest), Suppression.scope == scope,
                                                     Suppression.removed_at.is_(None))).all()
    for row in rows:
        if row.expires_at is not None and utc(row.expires_at) <= now:
            # lapsed but not yet swept: it ends here, and the new add below keeps the address listed
            row.removed_at, row.removed_reason = row.expires_at, "expired"
        elif _outlasts(row.expires_at, expires_at):
            return row, False
        else:
            row.removed_at, row.removed_reason = now, "superseded"
    row = Suppression(address=addr, address_hash=digest, scope=scope, reason=reason.strip()[:60], source=source,
                      event_table=event_table, event_id=event_id, details=details, created_at=now,
                      expires_at=expires_at)
    session.add(row)
    session.flush()
    _log(session, "add", row, row.reason, now)
    return row, True


def add_suppressions(session: Session, items: list[dict[str, Any]], *, source: str, now: datetime,
                     scope: str = GLOBAL, expires_at: datetime | None = None) -> int:
    """`add_suppression` for many normalised addresses at once (the rules' hygiene bounces).

    Each item has `address`, `reason` and optionally `event_table`, `event_id`, `details`.
    Addresses with no row in force in `scope` are written in two bulk inserts (suppressions,
    then their changes, in the same order); the others go through `add_suppression`.
    Returns how many suppressions were created.
    """
    scope, now, expires_at = normalise_scope(scope), utc(now), utc(expires_at)
    names = sorted({item["address"] for item in items})
    busy: set[str] = set()
    for i in range(0, len(names), 500):
        busy.update(session.scalars(select(Suppression.address).where(
            Suppression.address.in_(names[i:i + 500]), Suppression.scope == scope, Suppression.removed_at.is_(None))))
    created, fresh, seen = 0, [], set()
    for item in items:
        address = item["address"]
        if address in seen:
            continue
        seen.add(address)
        if address in busy:
            created += add_suppression(session, address, reason=item["reason"], source=source, now=now, scope=scope,
                                       expires_at=expires_at, event_table=item.get("event_table"),
                                       event_id=item.get("event_id"), details=item.get("details"))[1]
        else:
            fresh.append({"address": normalise(address), "address_hash": None, "scope": scope,
                          "reason": item["reason"][:60], "source": source, "event_table": item.get("event_table"),
                          "event_id": item.get("event_id"), "details": item.get("details"), "created_at": now,
                          "expires_at": expires_at})
    if not fresh:
        return created
    session.flush()
    ids = session.scalars(insert(Suppression).returning(Suppression.id, sort_by_parameter_order=True), fresh).all()
    _lock_feed(session)
    session.execute(insert(SuppressionChange), [
        {"op": "add", "address": row["address"], "scope": scope, "reason": row["reason"], "at": now,
         "suppression_id": sid} for row, sid in zip(fresh, ids)])
    return created + len(fresh)


def remove_suppression(session: Session, address: str, *, reason: str, now: datetime,
                       scope: str = GLOBAL) -> list[Suppression]:
    """Lift the suppression of `address` in `scope`; returns the rows removed (may be none)."""
    if not reason or not reason.strip():
        raise ValueError("a removal needs a reason")
    addr, digest = target(address)
    scope = normalise_scope(scope)
    now = utc(now)
    rows = session.scalars(select(Suppression).where(_who(addr, digest), Suppression.scope == scope,
                                                     Suppression.removed_at.is_(None))).all()
    for row in rows:
        row.removed_at, row.removed_reason = now, reason.strip()[:60]
        _log(session, "remove", row, row.removed_reason, now)
    return list(rows)


def expire_due(session: Session, now: datetime) -> int:
    """Write a `remove` change for every suppression whose expiry has passed."""
    now = utc(now)
    rows = session.scalars(select(Suppression).where(Suppression.removed_at.is_(None),
                                                     Suppression.expires_at.is_not(None),
                                                     Suppression.expires_at <= now)
                           .order_by(Suppression.expires_at, Suppression.id)).all()
    for row in rows:
        row.removed_at, row.removed_reason = row.expires_at, "expired"
        _log(session, "remove", row, "expired", now)
    return len(rows)


def erase_address(session: Session, address: str, digest: str) -> dict[str, int]:
    """Replace `address` by its hash in the suppression list and the change log, and drop
    the rules' working rows that name it. Returns the rows touched per table."""
    addr = normalise(address)
    shown = HASH_PREFIX + digest
    sups = session.scalars(select(Suppression).where(Suppression.address == addr)).all()
    for row in sups:
        # the events behind it are erased too: keep the decision, not the pointer
        row.address, row.address_hash = None, digest
        row.event_table = row.event_id = None
        row.details = {"erased": True}
    changes = session.scalars(select(SuppressionChange).where(SuppressionChange.address == addr)).all()
    for change in changes:
        change.address = shown
    evidence = session.query(SuppressionEvidence).filter(SuppressionEvidence.address == addr).delete()
    holds = session.query(SuppressionHold).filter(SuppressionHold.address == addr).delete()
    session.flush()
    return {"suppressions": len(sups), "suppression_changes": len(changes),
            "suppression_evidence": evidence, "suppression_holds": holds}


# -- reads ------------------------------------------------------------------------------------

def is_suppressed(session: Session, address: str, scope_candidates: Iterable[str] = (GLOBAL,), *,
                  now: datetime | None = None, salt: str = "") -> Suppression | None:
    """The suppression in force for `address` in any of `scope_candidates`, or None.

    Pass `salt` (the configuration's privacy.salt) so that erased addresses, kept only as
    their hash, still answer. A malformed address is never suppressed (it cannot be mailed).
    """
    now = utc(now) if now is not None else utcnow()
    addr, digest = target(address)
    scopes = [normalise_scope(s) for s in scope_candidates] or [GLOBAL]
    return session.scalars(select(Suppression).where(_whom(addr, digest, salt), Suppression.scope.in_(scopes),
                                                     *in_force(now))
                           .order_by(Suppression.id).limit(1)).first()


def suppressions_of(session: Session, address: str, *, now: datetime, salt: str = "") -> list[Suppression]:
    """Every suppression in force for `address`, in any scope, oldest first.

    Like `is_suppressed`, an erased address answers through its salted hash when `salt` is
    given; `address` may also be the `hmac-sha256:` form itself.
    """
    addr, digest = target(address)
    return list(session.scalars(select(Suppression).where(_whom(addr, digest, salt), *in_force(utc(now)))
                                .order_by(Suppression.id)))


def active_suppressions(session: Session, now: datetime, *, scope: str | None = None,
                        reason: str | None = None, search: str | None = None):
    """The suppressions in force, oldest first (a query, so big lists stream)."""
    query = select(Suppression).where(*in_force(utc(now)))
    if scope:
        query = query.where(Suppression.scope == normalise_scope(scope))
    if reason:
        query = query.where(Suppression.reason == reason)
    if search:
        needle = search.strip().lower()
        if is_hashed(needle):
            query = query.where(Suppression.address_hash == needle[len(HASH_PREFIX):])
        else:
            query = query.where(Suppression.address.contains(needle, autoescape=True))
    return query.order_by(Suppression.id)


def change_row(change: SuppressionChange) -> dict[str, Any]:
    """One change as the feed shows it."""
    return {"cursor": change.cursor, "op": change.op, "address": change.address, "scope": change.scope,
            "reason": change.reason, "at": feed_time(change.at)}


def changes_since(session: Session, cursor: int = 0, limit: int = 1000) -> tuple[list[dict[str, Any]], int]:
    """The changes after `cursor`, in order, at most `limit` (capped at MAX_FEED_LIMIT).

    Returns (rows, next): `next` is the cursor to ask with next time — the last row's, or
    `cursor` itself when nothing is new.
    """
    if cursor < 0:
        raise ValueError("cursor must be 0 or a cursor the feed returned")
    if limit < 1:
        raise ValueError("limit must be at least 1")
    changes = session.scalars(select(SuppressionChange).where(SuppressionChange.cursor > cursor)
                              .order_by(SuppressionChange.cursor).limit(min(limit, MAX_FEED_LIMIT))).all()
    rows = [change_row(c) for c in changes]
    return rows, (rows[-1]["cursor"] if rows else cursor)


def feed_document(rows: list[dict[str, Any]], next_cursor: int) -> dict[str, Any]:
    """The JSON body of `GET /api/v1/suppressions` (DESIGN.md's contract)."""
    return {"changes": rows, "next": next_cursor}


def feed_csv(rows: list[dict[str, Any]]) -> str:
    """The same rows as CSV (`format=csv`), with a header line."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FEED_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
