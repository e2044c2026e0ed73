"""The suppression pass: which bounces and complaints stop mail to an address.

Events are read once, in id order, above a stored watermark. Each pass:
- a hygiene bounce (userunknown, ...) suppresses the address at once;
- a countable soft bounce is written down as evidence under the normalised address, and the
  address is judged (analysis.suppression_rules): enough soft bounces within the window,
  from enough sent messages far enough apart, since the last successful delivery, suppress it;
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

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from analysis.jobs import JobContext, job
from analysis.providers import OTHER, provider_for_domain
from analysis.suppression_rules import (NEVER, Escalation, Rules, SuppressionRulesError, escalation,
                                        load_facts, send_log_model)
from ingest.bounce.classify import ADDRESS_REASONS
from ingest.bounce.rules import CATEGORY
from store.addresses import domain_of, try_normalise
from store.alerts import Alert, raise_alert, resolve_alert
from store.models import BounceEvent, ComplaintEvent
from store.watermark import committed_max_id
from store.suppressions import (GLOBAL, SuppressionEvidence, SuppressionHold,
                                SuppressionWatermark, add_suppression, add_suppressions, expire_due, utc)

__all__ = ["Outcome", "Rules", "SuppressionRulesError", "mass_events", "run", "suppression_job"]

NOT_FAILED = frozenset({"delayed", "delivered", "relayed", "expanded"})  # DSN actions that are no bounce
BATCH = 5000  # events per transaction
HOLD_RULE = "suppression_hold"


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


def _at_once(ev, rules: Rules) -> bool:
    """A bad-address reason suppresses at once only when the classifier called it hard: its
    words and codes agreed and nothing said the failure was temporary."""
    if ev.reason in ADDRESS_REASONS and not ev.hard:
        return False
    return ev.reason not in rules.permanent_only or _permanent(ev)


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


def run(sessions: sessionmaker[Session], rules: Rules, now: datetime) -> Outcome:
    """One pass over the events that arrived since the last one; safe to repeat."""
    now = utc(now)
    out = Outcome()
    with sessions.begin() as session:
        out.expired = expire_due(session, now)
        out.guarded = mass_events(session, rules, now)
    # read up to the highest id below which every event is committed (see committed_max_id)
    with sessions() as session:
        bounces_hi = committed_max_id(session, BounceEvent.id) or 0
        complaints_hi = committed_max_id(session, ComplaintEvent.id) or 0
    while True:
        with sessions.begin() as session, session.no_autoflush:
            if not _bounces(session, rules, now, out, bounces_hi):
                break
    while True:
        with sessions.begin() as session:
            if not _complaints(session, rules, now, out, complaints_hi):
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


def _bounces(session: Session, rules: Rules, now: datetime, out: Outcome, hi: int) -> int:
    """One batch of new bounce events (ids up to `hi`); returns how many were read."""
    mark = _watermark(session, "bounce_events")
    events = session.execute(select(
        BounceEvent.id, BounceEvent.message_id, BounceEvent.occurred_at, BounceEvent.recipient,
        BounceEvent.recipient_domain, BounceEvent.provider, BounceEvent.action, BounceEvent.status,
        BounceEvent.reply_code, BounceEvent.reason, BounceEvent.hard, BounceEvent.category,
        BounceEvent.orig_message_id, BounceEvent.send_id,
    ).where(BounceEvent.id > mark.last_id, BounceEvent.id <= hi).order_by(BounceEvent.id).limit(BATCH)).all()
    if not events:
        return 0
    evidence: list[dict] = []
    immediate: dict[str, object] = {}  # address -> its first hygiene bounce in this batch
    judge: dict[str, tuple[int, str, datetime]] = {}  # address -> (latest soft event, provider, when)
    for ev in events:
        address = try_normalise(ev.recipient)
        if address is None:
            continue
        category = CATEGORY.get(ev.reason, ev.category)
        provider = provider_of(ev.provider, ev.recipient_domain or domain_of(address))[:40]
        row = dict(address=address, reason=ev.reason, occurred_at=utc(ev.occurred_at), bounce_event_id=ev.id,
                   message_key=_message_key(ev), send_id=ev.send_id, provider=provider)
        if category == "delivered":
            if rules.reset_on_delivery:
                evidence.append(dict(row, kind="delivered"))
        elif category in NEVER:
            continue  # the receiver refuses the sender or the message, not the address
        elif ev.reason in rules.immediate and _at_once(ev, rules):
            immediate.setdefault(address, ev)
        elif rules.counts(ev.reason) and (ev.action or "").lower() not in NOT_FAILED:
            evidence.append(dict(row, kind="soft"))
            judge[address] = (ev.id, provider, row["occurred_at"])
    if evidence:
        session.execute(insert(SuppressionEvidence), evidence)
        out.evidence += len(evidence)
    _suppress_at_once(session, rules, immediate, now, out)
    mark.last_id = events[-1].id
    session.flush()
    if judge:
        since = min(t for _, _, t in judge.values()) - rules.window
        facts = load_facts(session, rules, judge, now, since=since)
        held = False
        for address, (event_id, provider, _) in judge.items():
            found = escalation(facts, rules, address)
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


def _suppress_at_once(session: Session, rules: Rules, immediate: dict, now: datetime, out: Outcome) -> None:
    if immediate:
        out.suppressed += add_suppressions(session, [
            {"address": address, "reason": ev.reason, "event_table": "bounce_events", "event_id": ev.id,
             "details": {"rule": "immediate", "status": ev.status, "reply_code": ev.reply_code}}
            for address, ev in immediate.items()], source="bounce", now=now, scope=GLOBAL,
            expires_at=_expiry(now, rules.hygiene_expiry))


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


def _complaints(session: Session, rules: Rules, now: datetime, out: Outcome, hi: int) -> int:
    mark = _watermark(session, "complaint_events")
    events = session.execute(select(
        ComplaintEvent.id, ComplaintEvent.feedback_type, ComplaintEvent.recipient, ComplaintEvent.from_domain,
        ComplaintEvent.reported_domain, ComplaintEvent.send_id,
    ).where(ComplaintEvent.id > mark.last_id, ComplaintEvent.id <= hi).order_by(ComplaintEvent.id)
      .limit(BATCH)).all()
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


def _sent_to(session: Session, send_id: int | None) -> str | None:
    log = send_log_model(session) if send_id is not None else None
    if log is None:
        return None
    return try_normalise(session.scalar(select(log.recipient).where(log.id == send_id)))


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
    if not holds:
        return
    facts = load_facts(session, rules, [h.address for h in holds], now)
    released: dict[str, int] = defaultdict(int)
    for hold in holds:
        found = escalation(facts, rules, hold.address)
        if found is not None:
            out.suppressed += suppress(session, rules, found, now)
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
