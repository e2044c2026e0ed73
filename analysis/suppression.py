"""The suppression rules: which bounces and complaints stop mail to an address.

Events are read once, in id order, above a stored watermark. Each pass:
- a hygiene bounce (userunknown, ...) suppresses the address at once;
- a countable soft bounce is written down as evidence under the normalised address, and the
  address is judged: enough soft bounces within the window, from enough sent messages far
  enough apart, since the last successful delivery, suppress it;
- a complaint of an abuse/fraud/opt-out/unsubscribe type suppresses at once, for good;
- while one provider's bounces are mostly `reputation` blocks (a mass event: the receiver
  refuses *us*), soft escalations for it are held, an alert is raised, and the held
  addresses are judged again once the event has passed.
Reputation, policy, content and unknown bounces never suppress (DESIGN.md's categories).
Decisions are rows of their own pointing at the events behind them; events are not edited.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from analysis.jobs import JobContext, job
from analysis.providers import OTHER, provider_for_domain
from analysis.suppression_config import SuppressionConfig
from ingest.bounce.rules import CATEGORY
from store.addresses import try_normalise
from store.alerts import Alert, raise_alert, resolve_alert
from store.models import BounceEvent, ComplaintEvent
from store.suppressions import (GLOBAL, Suppression, SuppressionEvidence, SuppressionHold,
                                SuppressionWatermark, add_suppression, expire_due, utc)

NEVER = frozenset({"reputation", "policy", "content", "unknown", "delivered", "auto_reply"})
NOT_FAILED = frozenset({"delayed", "delivered", "relayed", "expanded"})  # DSN actions that are no bounce
BOUNCE_LAG = timedelta(days=5)  # a queue's lifetime: how late an unattributed bounce may follow its send
BATCH = 5000  # events per transaction
HOLD_RULE = "suppression_hold"


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


@dataclass
class Outcome:
    """What one pass did."""

    suppressed: int = 0
    expired: int = 0
    evidence: int = 0
    held: int = 0
    released: int = 0
    guarded: dict[str, tuple[int, int]] = field(default_factory=dict)  # provider -> (blocks, bounces)

    @property
    def rows(self) -> int:
        return self.suppressed + self.expired + self.evidence + self.held + self.released


def provider_of(provider: str | None, domain: str | None) -> str:
    return provider or provider_for_domain(domain) or OTHER


def _permanent(ev) -> bool:
    return bool(ev.hard) or (ev.status or "").startswith("5") or (ev.reply_code or "").startswith("5")


def _message_key(ev) -> str:
    """Which sent message bounced: its Message-ID, its send-log id, else the DSN itself."""
    if ev.orig_message_id:
        return ev.orig_message_id.strip()[:255]
    if ev.send_id is not None:
        return f"send:{ev.send_id}"
    return f"dsn:{ev.message_id}"


def _expiry(now: datetime, span: timedelta | None) -> datetime | None:
    return now + span if span is not None else None


# -- the pass ---------------------------------------------------------------------------------

def run(sessions: sessionmaker[Session], rules: Rules, now: datetime) -> Outcome:
    """One pass over the events that arrived since the last one; safe to repeat."""
    now = utc(now)
    out = Outcome()
    with sessions.begin() as session:
        out.expired = expire_due(session, now)
        out.guarded = mass_events(session, rules, now)
    while True:
        with sessions.begin() as session:
            if not _bounces(session, rules, now, out):
                break
    while True:
        with sessions.begin() as session:
            if not _complaints(session, rules, now, out):
                break
    with sessions.begin() as session:
        _release(session, rules, now, out)
    return out


def _watermark(session: Session, name: str) -> SuppressionWatermark:
    mark = session.get(SuppressionWatermark, name)
    if mark is None:
        mark = SuppressionWatermark(name=name, last_id=0)
        session.add(mark)
    return mark


def _bounces(session: Session, rules: Rules, now: datetime, out: Outcome) -> int:
    """One batch of new bounce events; returns how many were read."""
    mark = _watermark(session, "bounce_events")
    events = session.execute(select(
        BounceEvent.id, BounceEvent.message_id, BounceEvent.occurred_at, BounceEvent.recipient,
        BounceEvent.recipient_domain, BounceEvent.provider, BounceEvent.action, BounceEvent.status,
        BounceEvent.reply_code, BounceEvent.reason, BounceEvent.hard, BounceEvent.category,
        BounceEvent.orig_message_id, BounceEvent.send_id,
    ).where(BounceEvent.id > mark.last_id).order_by(BounceEvent.id).limit(BATCH)).all()
    judge: dict[str, tuple[int, str]] = {}  # address -> (latest soft event, provider)
    for ev in events:
        address = try_normalise(ev.recipient)
        if address is None:
            continue
        category = CATEGORY.get(ev.reason, ev.category)
        provider = provider_of(ev.provider, ev.recipient_domain or address.split("@", 1)[1])
        if category == "delivered":
            if rules.reset_on_delivery:
                out.evidence += _evidence(session, ev, address, "delivered", provider)
            continue
        if category in NEVER:
            continue  # the receiver refuses the sender or the message, not the address
        if ev.reason in rules.immediate and (ev.reason not in rules.permanent_only or _permanent(ev)):
            _, created = add_suppression(
                session, address, reason=ev.reason, source="bounce", now=now, scope=GLOBAL,
                expires_at=_expiry(now, rules.hygiene_expiry), event_table="bounce_events", event_id=ev.id,
                details={"rule": "immediate", "status": ev.status, "reply_code": ev.reply_code})
            out.suppressed += created
            continue
        countable = ev.reason in rules.thresholds or ev.reason in rules.permanent_only
        if countable and (ev.action or "").lower() not in NOT_FAILED:
            out.evidence += _evidence(session, ev, address, "soft", provider)
            judge[address] = (ev.id, provider)
    if events:
        mark.last_id = events[-1].id
    session.flush()
    held = False
    for address, (event_id, provider) in judge.items():
        found = escalation(session, rules, address, now)
        if found is None:
            continue
        if provider in out.guarded:
            out.held += _hold(session, address, provider, event_id, now)
            held = True
        else:
            out.suppressed += suppress(session, rules, found, now)
    if held:
        _alert_holds(session, rules, out, now)
    return len(events)


def _evidence(session: Session, ev, address: str, kind: str, provider: str) -> int:
    if session.scalar(select(SuppressionEvidence.id).where(SuppressionEvidence.bounce_event_id == ev.id)):
        return 0
    session.add(SuppressionEvidence(address=address, kind=kind, reason=ev.reason, occurred_at=utc(ev.occurred_at),
                                    bounce_event_id=ev.id, message_key=_message_key(ev), send_id=ev.send_id,
                                    provider=provider[:40]))
    return 1


def _complaints(session: Session, rules: Rules, now: datetime, out: Outcome) -> int:
    mark = _watermark(session, "complaint_events")
    events = session.execute(select(
        ComplaintEvent.id, ComplaintEvent.feedback_type, ComplaintEvent.recipient, ComplaintEvent.from_domain,
        ComplaintEvent.reported_domain, ComplaintEvent.send_id,
    ).where(ComplaintEvent.id > mark.last_id).order_by(ComplaintEvent.id).limit(BATCH)).all()
    for ev in events:
        kind = (ev.feedback_type or "").strip().lower()
        if kind not in rules.complaint_types:
            continue
        address = try_normalise(ev.recipient) or _sent_to(session, ev.send_id)
        if address is None:
            continue  # a redacted report with nothing to tie it to a recipient
        scope = GLOBAL
        domain = ev.from_domain or ev.reported_domain
        if rules.complaint_scope == "domain" and domain:
            scope = f"domain:{domain}"
        _, created = add_suppression(session, address, reason=kind, source="complaint", now=now, scope=scope,
                                     expires_at=None, event_table="complaint_events", event_id=ev.id)
        out.suppressed += created
    if events:
        mark.last_id = events[-1].id
    return len(events)


def _send_log(session: Session):
    """The send log model when its table exists (the sender writes it), else None."""
    if not inspect(session.connection()).has_table("send_log"):
        return None
    from store.volume import SendLog

    return SendLog


def _sent_to(session: Session, send_id: int | None) -> str | None:
    log = _send_log(session) if send_id is not None else None
    if log is None:
        return None
    return try_normalise(session.scalar(select(log.recipient).where(log.id == send_id)))


# -- judging one address ----------------------------------------------------------------------

@dataclass(frozen=True)
class Escalation:
    """Soft bounces of one address that meet a threshold: the decision before it is written."""

    address: str
    reason: str
    level: int
    group: tuple[SuppressionEvidence, ...]
    since: datetime


def escalation(session: Session, rules: Rules, address: str, now: datetime) -> Escalation | None:
    """Whether the soft bounces of `address` meet a threshold now (nothing is written)."""
    if _suppressed_now(session, address, now):
        return None
    soft = session.scalars(select(SuppressionEvidence).where(
        SuppressionEvidence.address == address, SuppressionEvidence.kind == "soft")
        .order_by(SuppressionEvidence.occurred_at.desc(), SuppressionEvidence.id.desc())
        .limit(500)).all()
    if not soft:
        return None
    anchor = utc(soft[0].occurred_at)
    start = max(anchor - rules.window, _since_last_suppression(session, address) or anchor - rules.window)
    reset = _last_delivery(session, rules, address, soft, now)
    if reset is not None:
        start = max(start, reset)
    counted = sorted((e for e in soft if utc(e.occurred_at) > start), key=lambda e: (e.occurred_at, e.id))
    for level in sorted({rules.threshold(e.reason) for e in counted}):
        group = [e for e in counted if rules.threshold(e.reason) <= level]
        if len(group) < level or not _spread(rules, group):
            continue
        reasons = Counter(e.reason for e in group)
        reason = max(reasons, key=lambda r: (reasons[r], -rules.threshold(r)))
        return Escalation(address, reason, level, tuple(group), start)
    return None


def suppress(session: Session, rules: Rules, found: Escalation, now: datetime) -> bool:
    """Write the suppression an escalation calls for; True when it is new."""
    _, created = add_suppression(
        session, found.address, reason=found.reason, source="bounce", now=now, scope=GLOBAL,
        expires_at=_expiry(now, rules.soft_expiry), event_table="bounce_events",
        event_id=found.group[-1].bounce_event_id,
        details={"rule": f"{found.level} soft bounces within {rules.window.days} days",
                 "events": [e.bounce_event_id for e in found.group],
                 "messages": len({e.message_key for e in found.group}), "since": found.since.isoformat()})
    return created


def judge_address(session: Session, rules: Rules, address: str, now: datetime) -> bool:
    """Suppress `address` when its soft bounces meet a threshold; True when it was suppressed now."""
    found = escalation(session, rules, address, now)
    return found is not None and suppress(session, rules, found, now)


def _suppressed_now(session: Session, address: str, now: datetime) -> bool:
    return session.scalar(select(Suppression.id).where(
        Suppression.address == address, Suppression.scope == GLOBAL, Suppression.removed_at.is_(None),
        Suppression.expires_at.is_(None) | (Suppression.expires_at > now)).limit(1)) is not None


def _spread(rules: Rules, group: list[SuppressionEvidence]) -> bool:
    """At least `min_messages` sent messages, two of them `min_spread` apart."""
    keys = {e.message_key for e in group}
    if len(keys) < rules.min_messages:
        return False
    if rules.min_spread <= timedelta(0):
        return True
    first, last = group[0], group[-1]
    if rules.min_messages <= 1 or first.message_key != last.message_key:
        return utc(last.occurred_at) - utc(first.occurred_at) >= rules.min_spread
    # first and last came from one message: pair each with the farthest bounce of another message
    gaps = [utc(last.occurred_at) - utc(e.occurred_at) for e in group if e.message_key != last.message_key][:1]
    gaps += [utc(e.occurred_at) - utc(first.occurred_at) for e in reversed(group)
             if e.message_key != first.message_key][:1]
    return any(g >= rules.min_spread for g in gaps)


def _since_last_suppression(session: Session, address: str) -> datetime | None:
    """Bounces from before an earlier suppression ended (removed by a person, or lapsed) were
    already judged: they do not count again."""
    return utc(session.scalar(select(func.max(Suppression.removed_at)).where(
        Suppression.address == address, Suppression.scope == GLOBAL, Suppression.removed_at.is_not(None),
        Suppression.removed_reason != "superseded")))


def _last_delivery(session: Session, rules: Rules, address: str, soft: list[SuppressionEvidence],
                   now: datetime) -> datetime | None:
    """When mail to `address` last got through: a delivery report, or a send the receiving MX
    accepted that no bounce came back for."""
    if not rules.reset_on_delivery:
        return None
    when = utc(session.scalar(select(func.max(SuppressionEvidence.occurred_at)).where(
        SuppressionEvidence.address == address, SuppressionEvidence.kind == "delivered",
        SuppressionEvidence.occurred_at <= now)))
    log = _send_log(session)
    if log is None:
        return when
    send_ids = {e.send_id for e in soft if e.send_id is not None}
    keys = {e.message_key for e in soft}
    loose = [utc(e.occurred_at) for e in soft if e.send_id is None and e.message_key.startswith("dsn:")]
    sends = session.execute(select(log.id, log.sent_at, log.message_id).where(
        log.recipient == address, log.result == "sent", log.sent_at <= now,
        log.sent_at > (when or utc(soft[0].occurred_at) - rules.window))
        .order_by(log.sent_at.desc()).limit(200)).all()
    for send in sends:
        sent_at = utc(send.sent_at)
        if send.id in send_ids or (send.message_id and send.message_id.strip()[:255] in keys):
            continue  # this send is one that bounced
        if any(sent_at <= t <= sent_at + BOUNCE_LAG for t in loose):
            continue  # an unattributed bounce may be this send's
        return sent_at if when is None or sent_at > when else when
    return when


# -- the mass-event guard ---------------------------------------------------------------------

def mass_events(session: Session, rules: Rules, now: datetime) -> dict[str, tuple[int, int]]:
    """Providers whose recent bounces are mostly `reputation` blocks: provider -> (blocks, bounces)."""
    rows = session.execute(select(BounceEvent.provider, BounceEvent.recipient_domain, BounceEvent.reason,
                                  func.count()).where(BounceEvent.occurred_at > now - rules.guard_window,
                                                      BounceEvent.occurred_at <= now)
                           .group_by(BounceEvent.provider, BounceEvent.recipient_domain, BounceEvent.reason)).all()
    blocks: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for provider, domain, reason, n in rows:
        category = CATEGORY.get(reason, "unknown")
        if category in ("delivered", "auto_reply"):
            continue
        p = provider_of(provider, domain)
        total[p] += n
        if category == "reputation":
            blocks[p] += n
    return {p: (blocks[p], total[p]) for p in total
            if blocks[p] >= rules.guard_min and blocks[p] >= rules.guard_share * total[p]}


def _hold(session: Session, address: str, provider: str, event_id: int, now: datetime) -> int:
    hold = session.scalar(select(SuppressionHold).where(SuppressionHold.address == address))
    if hold is not None:
        hold.provider, hold.bounce_event_id = provider, event_id
        return 0
    session.add(SuppressionHold(address=address, provider=provider, bounce_event_id=event_id, held_at=now))
    return 1


def _alert_holds(session: Session, rules: Rules, out: Outcome, now: datetime) -> None:
    session.flush()
    minutes = int(rules.guard_window.total_seconds() // 60)
    held = dict(session.execute(select(SuppressionHold.provider, func.count()).where(
        SuppressionHold.provider.in_(list(out.guarded))).group_by(SuppressionHold.provider)).all())
    for provider, count in held.items():
        blocks, bounces = out.guarded[provider]
        raise_alert(session, rule=HOLD_RULE, dimension="provider", key=provider, severity="warning", now=now,
                    message=(f"{provider}: {blocks} of {bounces} bounces in the last {minutes} minutes are "
                             f"reputation blocks; {count} soft-bounce suppression(s) are held until it passes"),
                    details={"blocks": blocks, "bounces": bounces, "held": count})


def _release(session: Session, rules: Rules, now: datetime, out: Outcome) -> None:
    """Judge the held addresses whose provider is no longer in a mass event."""
    holds = session.scalars(select(SuppressionHold).where(SuppressionHold.provider.not_in(list(out.guarded)))
                            .order_by(SuppressionHold.id)).all()
    released: dict[str, int] = defaultdict(int)
    for hold in holds:
        out.suppressed += judge_address(session, rules, hold.address, now)
        released[hold.provider] += 1
        session.delete(hold)
        out.released += 1
    for provider in released:
        for alert in session.scalars(select(Alert).where(Alert.status == "open", Alert.rule == HOLD_RULE,
                                                         Alert.dimension == "provider", Alert.key == provider)):
            resolve_alert(session, alert, now)


@job("suppression", every=timedelta(minutes=5), order=30)
def suppression_job(ctx: JobContext) -> int:
    """Suppress addresses from new bounces and complaints; lapse expired suppressions."""
    return run(ctx.sessions, Rules.from_config(ctx.settings.suppression), ctx.clock()).rows


def explain(details: dict[str, Any] | None) -> str:
    """One line saying how a rule decided, for `postwatch suppression list`."""
    if not details:
        return ""
    if details.get("erased"):
        return "address erased"
    rule = details.get("rule", "")
    if "events" in details:
        return f"{rule}: events {', '.join(map(str, details['events']))}"
    return rule
