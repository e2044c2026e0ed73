"""The suppression rules as data, and the judgement of one address's soft bounces.

`Rules` is the checked form of the [suppression] section. `load_facts` reads, in a few
queries for many addresses at once, what the judgement needs; `escalation` then decides,
without touching the store, whether an address's soft bounces meet a threshold.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, NamedTuple

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from analysis.config import SuppressionConfig
from ingest.bounce.rules import CATEGORY
from store.suppressions import GLOBAL, Suppression, SuppressionEvidence, utc

NEVER = frozenset({"reputation", "policy", "content", "unknown", "delivered", "auto_reply"})
BOUNCE_LAG = timedelta(days=5)  # a queue's lifetime: how late an unattributed bounce may follow its send
CHUNK = 500  # addresses per IN (...) list


class SuppressionRulesError(ValueError):
    """A [suppression] section the rules cannot follow; the message says what to change."""


@dataclass(frozen=True)
class Rules:
    immediate: frozenset[str]
    permanent_only: frozenset[str]
    thresholds: dict[str, int]  # every countable soft reason -> bounces needed
    soft_threshold: int  # for a permanent_only reason that came back soft (4xx)
    window: timedelta
    min_messages: int
    min_spread: timedelta
    reset_on_delivery: bool
    complaint_types: frozenset[str]
    complaint_scope: str
    hygiene_expiry: timedelta | None
    soft_expiry: timedelta | None
    guard_share: float
    guard_min: int
    guard_window: timedelta

    @classmethod
    def from_config(cls, cfg: SuppressionConfig) -> Rules:
        def known(reason: str, key: str, allowed: tuple[str, ...]) -> str:
            category = CATEGORY.get(reason)
            if category is None:
                raise SuppressionRulesError(f"suppression.{key}: {reason!r} is not a bounce reason "
                                            "(see DESIGN.md's table of reasons)")
            if category not in allowed:
                raise SuppressionRulesError(
                    f"suppression.{key}: {reason!r} is a {category!r} reason, which "
                    + ("never suppresses a recipient" if category in NEVER else f"cannot be listed in {key}")
                    + " (DESIGN.md's table of categories decides); remove it")
            return reason

        immediate = frozenset(known(r, "immediate", ("hygiene",)) for r in cfg.immediate)
        permanent_only = frozenset(cfg.permanent_only)
        if not permanent_only <= immediate:
            raise SuppressionRulesError("suppression.permanent_only may only name reasons listed in "
                                        f"suppression.immediate: {', '.join(sorted(permanent_only - immediate))}")
        thresholds: dict[str, int] = {}
        for r in cfg.transient_reasons:
            thresholds[known(r, "transient_reasons", ("transient",))] = cfg.transient_threshold
        for item in cfg.thresholds:
            reason, sep, count = item.partition("=")
            reason = reason.strip()
            if not sep or not count.strip().isdigit() or int(count) < 1:
                raise SuppressionRulesError(f"suppression.thresholds: {item!r} should read reason=count, "
                                            "e.g. mailboxfull=3")
            if reason in immediate and reason not in permanent_only:
                raise SuppressionRulesError(f"suppression.thresholds: {reason!r} already suppresses at once "
                                            "(suppression.immediate); list it in one place only")
            thresholds[known(reason, "thresholds", ("hygiene", "transient"))] = int(count)
        if cfg.transient_threshold < 1 or cfg.min_messages < 1 or cfg.window_days < 1:
            raise SuppressionRulesError("suppression.transient_threshold, min_messages and window_days "
                                        "must be at least 1")
        if cfg.complaint_scope not in ("global", "domain"):
            raise SuppressionRulesError("suppression.complaint_scope must be 'global' or 'domain'")
        if not 0 < cfg.guard_share <= 1:
            raise SuppressionRulesError("suppression.guard_share is a share: above 0, at most 1 (0.5 = half)")

        def days(n: int) -> timedelta | None:
            return timedelta(days=n) if n > 0 else None

        return cls(immediate=immediate, permanent_only=permanent_only, thresholds=thresholds,
                   soft_threshold=cfg.transient_threshold, window=timedelta(days=cfg.window_days),
                   min_messages=cfg.min_messages, min_spread=timedelta(hours=cfg.min_spread_hours),
                   reset_on_delivery=cfg.reset_on_delivery,
                   complaint_types=frozenset(t.strip().lower() for t in cfg.complaint_types),
                   complaint_scope=cfg.complaint_scope, hygiene_expiry=days(cfg.hygiene_expiry_days),
                   soft_expiry=days(cfg.soft_expiry_days), guard_share=cfg.guard_share,
                   guard_min=cfg.guard_min_bounces, guard_window=timedelta(minutes=cfg.guard_window_minutes))

    def threshold(self, reason: str) -> int:
        return self.thresholds.get(reason, self.soft_threshold)

    def counts(self, reason: str) -> bool:
        """A soft bounce of this reason counts toward a threshold (a bad-address reason
        that came back soft counts like one: see suppression._at_once)."""
        return reason in self.thresholds or reason in self.permanent_only or reason in self.immediate


class Soft(NamedTuple):
    bounce_event_id: int
    reason: str
    occurred_at: datetime
    message_key: str
    send_id: int | None


class Send(NamedTuple):
    id: int
    sent_at: datetime
    message_id: str | None


@dataclass
class Facts:
    """What the judgement reads about a set of addresses."""

    soft: dict[str, list[Soft]] = field(default_factory=lambda: defaultdict(list))  # oldest first
    delivered: dict[str, datetime] = field(default_factory=dict)  # the last delivery report
    ended: dict[str, datetime] = field(default_factory=dict)  # when the last global suppression ended
    active: set[str] = field(default_factory=set)  # suppressed globally now
    sends: dict[str, list[Send]] = field(default_factory=lambda: defaultdict(list))  # accepted, newest first


def send_log_model(session: Session):
    """The send log model when its table exists (the sender writes it), else None."""
    if "send_log" not in session.info:
        session.info["send_log"] = inspect(session.connection()).has_table("send_log")
    if not session.info["send_log"]:
        return None
    from store.volume import SendLog

    return SendLog


def load_facts(session: Session, rules: Rules, addresses: Iterable[str], now: datetime,
               since: datetime | None = None) -> Facts:
    """Read the facts of `addresses`; soft bounces and sends older than `since` are left out."""
    facts = Facts()
    E, S = SuppressionEvidence, Suppression
    log = send_log_model(session) if rules.reset_on_delivery else None
    wanted = sorted(set(addresses))
    for i in range(0, len(wanted), CHUNK):
        chunk = wanted[i:i + CHUNK]
        query = select(E.address, E.bounce_event_id, E.reason, E.occurred_at, E.message_key, E.send_id).where(
            E.address.in_(chunk), E.kind == "soft")
        if since is not None:
            query = query.where(E.occurred_at > since)
        for r in session.execute(query.order_by(E.occurred_at, E.id)):
            facts.soft[r.address].append(Soft(r.bounce_event_id, r.reason, utc(r.occurred_at), r.message_key,
                                              r.send_id))
        if rules.reset_on_delivery:
            facts.delivered.update((a, utc(t)) for a, t in session.execute(
                select(E.address, func.max(E.occurred_at)).where(E.address.in_(chunk), E.kind == "delivered",
                                                                 E.occurred_at <= now).group_by(E.address)))
        facts.ended.update((a, utc(t)) for a, t in session.execute(
            select(S.address, func.max(S.removed_at)).where(
                S.address.in_(chunk), S.scope == GLOBAL, S.removed_at.is_not(None),
                S.removed_reason != "superseded").group_by(S.address)))
        facts.active.update(session.scalars(select(S.address).where(
            S.address.in_(chunk), S.scope == GLOBAL, S.removed_at.is_(None),
            S.expires_at.is_(None) | (S.expires_at > now))))
        if log is not None:
            query = select(log.recipient, log.id, log.sent_at, log.message_id).where(
                log.recipient.in_(chunk), log.result == "sent", log.sent_at <= now)
            if since is not None:
                query = query.where(log.sent_at > since)
            for r in session.execute(query.order_by(log.sent_at.desc())):
                facts.sends[r.recipient].append(Send(r.id, utc(r.sent_at), r.message_id))
    return facts


@dataclass(frozen=True)
class Escalation:
    """Soft bounces of one address that meet a threshold: the decision before it is written."""

    address: str
    reason: str
    level: int
    group: tuple[Soft, ...]
    since: datetime


def escalation(facts: Facts, rules: Rules, address: str) -> Escalation | None:
    """Whether the soft bounces of `address` meet a threshold (nothing is written)."""
    soft = facts.soft.get(address)
    if address in facts.active or not soft:
        return None
    start = soft[-1].occurred_at - rules.window  # the window ends at the latest soft bounce
    for later in (facts.ended.get(address), _last_delivery(facts, rules, address, soft)):
        if later is not None and later > start:
            start = later  # bounces before an ended suppression or a delivery do not count
    counted = [e for e in soft if e.occurred_at > start]
    for level in sorted({rules.threshold(e.reason) for e in counted}):
        group = [e for e in counted if rules.threshold(e.reason) <= level]
        if len(group) < level or not _spread(rules, group):
            continue
        reasons = Counter(e.reason for e in group)
        reason = max(reasons, key=lambda r: (reasons[r], -rules.threshold(r)))
        return Escalation(address, reason, level, tuple(group), start)
    return None


def _spread(rules: Rules, group: list[Soft]) -> bool:
    """At least `min_messages` sent messages, two of them `min_spread` apart."""
    if len({e.message_key for e in group}) < rules.min_messages:
        return False
    if rules.min_spread <= timedelta(0):
        return True
    first, last = group[0], group[-1]
    if rules.min_messages <= 1 or first.message_key != last.message_key:
        return last.occurred_at - first.occurred_at >= rules.min_spread
    # first and last came from one message: pair each with the farthest bounce of another message
    gaps = [last.occurred_at - e.occurred_at for e in group if e.message_key != last.message_key][:1]
    gaps += [e.occurred_at - first.occurred_at for e in reversed(group) if e.message_key != first.message_key][:1]
    return any(g >= rules.min_spread for g in gaps)


def _last_delivery(facts: Facts, rules: Rules, address: str, soft: list[Soft]) -> datetime | None:
    """When mail to `address` last got through: a delivery report, or a send the receiving MX
    accepted that no bounce came back for."""
    if not rules.reset_on_delivery:
        return None
    when = facts.delivered.get(address)
    send_ids = {e.send_id for e in soft if e.send_id is not None}
    keys = {e.message_key for e in soft}
    loose = [e.occurred_at for e in soft if e.send_id is None and e.message_key.startswith("dsn:")]
    for send in facts.sends.get(address, ()):
        if when is not None and send.sent_at <= when:
            break
        if send.id in send_ids or (send.message_id and send.message_id.strip()[:255] in keys):
            continue  # this send is one that bounced
        if any(send.sent_at <= t <= send.sent_at + BOUNCE_LAG for t in loose):
            continue  # an unattributed bounce may be this send's
        return send.sent_at
    return when
