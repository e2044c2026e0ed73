"""The in-memory suppression index the sender checks every recipient against.

Loaded once from the suppressions in force, then kept fresh from the change log: `refresh()`
reads only the changes after the last cursor it saw, so a check costs a hash and a set
look-up, never a query.

Each scope holds a set of the 64-bit hashes of its normalised addresses (Python's own string
hash, which is fixed within a process — the index never leaves it). A million entries take
about 70 MB; two different addresses sharing a hash is a ~1 in 10**13 event per check, and
it errs on the side of not sending. Suppressions with an expiry keep it beside the hash.
An erased address is listed only as its salted hash (`hmac-sha256:<hex>`): those are kept
by their hex digest, and a recipient is hashed with the salt only while there are any.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.addresses import HASH_PREFIX, address_hash, is_hashed
from store.clock import Clock, utcnow
from store.suppressions import (FREQUENCY, GLOBAL, SUNSET, TOPIC, Suppression, SuppressionChange, frequency_days,
                                normalise_scope, utc)

CHUNK = 10_000


def scopes_for(sending_domain: str | None, campaign: str | None, topics: Iterable[str] = ()) -> tuple[str, ...]:
    """The scopes one message is checked in: global, sunset, its sending domain, its campaign
    and each of its topics (a recipient who left any one of them is not sent it)."""
    out = [GLOBAL, SUNSET]
    if sending_domain:
        out.append(f"domain:{sending_domain.lower()}")
    if campaign:
        out.append(f"campaign:{campaign}")
    out += [normalise_scope(TOPIC + t) for t in topics]
    return tuple(out)


class SuppressionIndex:
    """Which (address, scope) pairs are suppressed now. Not thread-safe for writes: one
    thread refreshes, any thread may check between refreshes."""

    def __init__(self, *, salt: str = "", clock: Clock = utcnow) -> None:
        self.salt = salt
        self.clock = clock
        self.cursor = 0
        self._keys: dict[str, set[int]] = {}  # scope -> hashes of suppressed addresses
        self._expiring: dict[str, dict[int, float]] = {}  # scope -> hash -> expiry (epoch seconds)
        self._erased: dict[str, set[str]] = {}  # scope -> hex digests of erased addresses
        self._limits: dict[str, int] = {}  # frequency:<N>d scope -> N, for the scopes listed above

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def load(cls, sessions: sessionmaker[Session], *, salt: str = "", clock: Clock = utcnow) -> "SuppressionIndex":
        """Every suppression in force, and the cursor of the change log at that moment."""
        index = cls(salt=salt, clock=clock)
        now = utc(clock())
        with sessions() as session:
            # the cursor first: a change written while we read is read again by refresh()
            index.cursor = session.scalar(select(SuppressionChange.cursor).order_by(
                SuppressionChange.cursor.desc()).limit(1)) or 0
            S = Suppression
            query = (select(S.address, S.address_hash, S.scope, S.expires_at)
                     .where(S.removed_at.is_(None), (S.expires_at.is_(None)) | (S.expires_at > now))
                     .execution_options(yield_per=CHUNK))
            for address, digest, scope, expires_at in session.execute(query):
                index._add(address if address is not None else HASH_PREFIX + (digest or ""), scope, expires_at)
        return index

    def add_many(self, rows: Iterable[tuple[str, str]]) -> None:
        """(normalised address, scope) pairs, permanent — for bulk loads and the benchmark."""
        keys = self._keys
        for address, scope in rows:
            bucket = keys.get(scope)
            if bucket is None:
                bucket = keys[scope] = set()
                self._note_limit(scope)
            bucket.add(hash(address))

    def refresh(self, sessions: sessionmaker[Session]) -> int:
        """Apply the changes after the last cursor seen; returns how many were read."""
        read = 0
        C, S = SuppressionChange, Suppression
        with sessions() as session:
            while True:
                rows = session.execute(
                    select(C.cursor, C.op, C.address, C.scope, S.expires_at)
                    .outerjoin(S, S.id == C.suppression_id).where(C.cursor > self.cursor)
                    .order_by(C.cursor).limit(CHUNK)).all()
                for cursor, op, address, scope, expires_at in rows:
                    if op == "add":
                        self._add(address, scope, expires_at)
                    else:
                        self._remove(address, scope)
                    self.cursor = cursor
                read += len(rows)
                if len(rows) < CHUNK:
                    return read

    def _add(self, shown: str, scope: str, expires_at: datetime | None) -> None:
        if is_hashed(shown):
            self._erased.setdefault(scope, set()).add(shown[len(HASH_PREFIX):])
            return
        key = hash(shown)
        if scope.startswith(FREQUENCY):
            self._note_limit(scope)
        if expires_at is None:
            self._keys.setdefault(scope, set()).add(key)
            self._expiring.get(scope, {}).pop(key, None)
        elif key not in self._keys.get(scope, ()):
            expiry = utc(expires_at).timestamp()
            bucket = self._expiring.setdefault(scope, {})
            bucket[key] = max(expiry, bucket.get(key, 0.0))

    def _note_limit(self, scope: str) -> None:
        # read once, as the scope comes in: `frequency()` runs for every recipient of a campaign
        days = frequency_days(scope)  # None for the other scopes
        if days is not None:
            self._limits[scope] = days

    def _remove(self, shown: str, scope: str) -> None:
        if is_hashed(shown):
            self._erased.get(scope, set()).discard(shown[len(HASH_PREFIX):])
            return
        key = hash(shown)
        self._keys.get(scope, set()).discard(key)
        self._expiring.get(scope, {}).pop(key, None)

    # -- checking ---------------------------------------------------------------------------

    def suppressed(self, address: str, scopes: Iterable[str] = (GLOBAL,), now: float | None = None) -> str | None:
        """The first of `scopes` in which `address` (normalised) is suppressed, or None."""
        key = hash(address)
        keys = self._keys
        for scope in scopes:
            bucket = keys.get(scope)
            if bucket is not None and key in bucket:
                return scope
        if self._expiring:
            when = now if now is not None else self.clock().timestamp()
            for scope in scopes:
                expiry = self._expiring.get(scope, {}).get(key)
                if expiry is not None and expiry > when:
                    return scope
        if self._erased and self.salt:
            digest = address_hash(address, self.salt)
            for scope in scopes:
                if digest in self._erased.get(scope, ()):
                    return scope
        return None

    def frequency(self, address: str, now: float | None = None) -> int | None:
        """The longest N of the `frequency:<N>d` limits `address` asked for (at most one message
        per N days), or None. A limit, not a block: the sender checks the send log."""
        longest = None
        for scope, days in self._limits.items():
            if (longest is None or days > longest) and self.suppressed(address, (scope,), now):
                longest = days
        return longest

    def __len__(self) -> int:
        return (sum(len(b) for b in self._keys.values()) + sum(len(b) for b in self._expiring.values())
                + sum(len(b) for b in self._erased.values()))
