"""Alert rules: each day's rollups against fixed lines and against their own recent past.

Threshold rules (per entity and day): complaint rate, hard-bounce rate, block rate, TLS
failure rate (of a policy domain, naming the TLS-RPT result types), a block spike at one
provider or sending IP, DMARC failures from a source never seen before. A rate decides only
when its count can carry it (analysis/evidence.py). Anomaly rules: the day's rate of a metric
against the trailing baseline's mean + k·stddev. Lines are in [alerts] (analysis/config.py).

Each rule *judges* an entity — it fires, it is clear, or there is not enough data to say.
Firing raises (store.alerts.raise_alert: one open alert per rule and entity); clear resolves
the open alert; no data leaves it alone until `stale_hours` have passed.

Every day is judged as it happened: the job judges each day whose rollups changed since it
was last judged (a backlog, the next-day DMARC and TLS reports) and each day missed while it
did not run, in order, dated that day — so the alert history says when each episode began and
ended. Blocklist alerts are raised and resolved by the blocklist check itself; posture alerts
by the posture check.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import pandas as pd
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from analysis.jobs import JobContext, job
from analysis.config import AlertsConfig
from analysis.evidence import complaint_base, passes, wilson_low
from analysis.rollups import BLOCK_METRICS, as_date, mark_days_to_judge, metrics_frame
from store.alerts import SEVERITIES, Alert, raise_alert, resolve_alert
from store.bulk import upsert_insert
from store.models import DmarcAggregateReport, DmarcRecord, TlsFailureDetail, TlsPolicy, TlsReport
from store.rollups import AlertDay, Rollup
from store.suppressions import utc

THRESHOLD_RULES = ("complaint_rate", "hard_bounce_rate", "block_rate", "tls_failure_rate", "block_spike",
                   "dmarc_new_source")
# the providers' own figures (analysis/provider_view.py): Gmail's spam rate, SNDS, Google's compliance
PROVIDER_RULES = ("gmail_spam_rate", "snds_filter", "snds_blocked", "gmail_compliance")
ANOMALY_PREFIX = "anomaly."


@dataclass(frozen=True)
class Finding:
    """One rule's judgement of one entity: `severity` None means the condition is clear."""

    rule: str
    dimension: str
    key: str
    severity: str | None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def owns(rule: str) -> bool:
    """Whether this module judges (and so may resolve) alerts of `rule`."""
    return rule in THRESHOLD_RULES or rule in PROVIDER_RULES or rule.startswith(ANOMALY_PREFIX)


# ---------------------------------------------------------------- reading the rollups

def metrics(session: Session, start: date, end: date, dimension: str, key: str) -> pd.DataFrame:
    """Every day of [start, end] as a row, one column per metric, zeros where absent."""
    return metrics_frame(session, start, end, dimension, key)


def entities(session: Session, start: date, end: date, dimensions: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (dimension, key) pairs with rollups in [start, end]."""
    rows = session.execute(select(Rollup.dimension, Rollup.key).distinct()
                           .where(Rollup.dimension.in_(dimensions), Rollup.day >= start, Rollup.day <= end)
                           .order_by(Rollup.dimension, Rollup.key))
    return [(d, k) for d, k in rows]


def _get(frame: pd.DataFrame, day: date, metric: str) -> float:
    if metric not in frame.columns:
        return 0.0
    return float(frame.at[day, metric])


def _label(dimension: str, key: str) -> str:
    return "all mail" if dimension == "all" else f"{dimension} {key or '(unknown)'}"


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


# ---------------------------------------------------------------- the rules

def rate_rule(rule: str, what: str, frame: pd.DataFrame, day: date, dimension: str, key: str,
              numerator: tuple[str, ...], denominator: float, minimum: float, warning: float, critical: float,
              cfg: AlertsConfig, unit: str = "sent", of: str | None = None) -> Finding | None:
    """A rate against its two lines; None (no judgement) below `minimum` or when the rate is
    past a line its count cannot carry (analysis/evidence.py: "too few to say")."""
    if denominator < minimum:
        return None  # not enough volume to judge
    count = sum(_get(frame, day, metric) for metric in numerator)
    rate = count / denominator
    details = {"day": day.isoformat(), "rate": rate, "count": int(count), unit: int(denominator),
               "warning": warning, "critical": critical,
               "wilson_low": wilson_low(count, denominator, cfg.wilson_z)}
    severity = ("critical" if passes(count, denominator, critical, cfg.min_count, cfg.wilson_z, cfg.min_events) else
                "warning" if passes(count, denominator, warning, cfg.min_count, cfg.wilson_z, cfg.min_events)
                else None)
    if severity is None and rate >= warning:
        return None  # past the line on too few events: neither fire nor clear
    line = critical if severity == "critical" else warning
    message = (f"{what} {_pct(rate)} ({int(count)} of {int(denominator)} {of or unit}) for {_label(dimension, key)} "
               f"on {day}: at or above the {severity} line {_pct(line)}") if severity else ""
    return Finding(rule, dimension, key, severity, message, details)


def threshold_findings(frame: pd.DataFrame, day: date, dimension: str, key: str,
                       cfg: AlertsConfig) -> list[Finding]:
    out: list[Finding | None] = []
    sent = _get(frame, day, "sent")
    base, basis = complaint_base(sent, _get(frame, day, "sent.fbl"))
    if sent >= cfg.min_volume:  # the day's volume decides whether to judge; the base, what the rate is of
        out.append(rate_rule("complaint_rate", "Complaint rate", frame, day, dimension, key, ("complaints",), base,
                             1, cfg.complaint_rate_warning, cfg.complaint_rate_critical, cfg,
                             of="sent to providers that report complaints" if basis == "sent.fbl" else None))
    out.append(rate_rule("hard_bounce_rate", "Hard-bounce rate", frame, day, dimension, key, ("hard",), sent,
                         cfg.min_volume, cfg.hard_bounce_rate_warning, cfg.hard_bounce_rate_critical, cfg))
    out.append(rate_rule("block_rate", "Block rate", frame, day, dimension, key, BLOCK_METRICS, sent,
                         cfg.min_volume, cfg.block_rate_warning, cfg.block_rate_critical, cfg))
    sessions = _get(frame, day, "tls.ok") + _get(frame, day, "tls.failed")
    out.append(rate_rule("tls_failure_rate", "TLS failure rate", frame, day, dimension, key, ("tls.failed",),
                         sessions, max(cfg.tls_min_sessions, 1), cfg.tls_failure_rate_warning,
                         cfg.tls_failure_rate_critical, cfg, unit="sessions"))
    if dimension in ("provider", "sending_ip"):  # a block names the provider that refuses and the IP refused
        out.append(block_spike(frame, day, dimension, key, cfg))
    return [f for f in out if f is not None]


def block_spike(frame: pd.DataFrame, day: date, dimension: str, key: str, cfg: AlertsConfig) -> Finding:
    """The day's share of refusals of the sender (reputation and policy bounces) at a provider,
    or of a sending IP, well above its baseline's."""
    blocks = sum(_get(frame, day, metric) for metric in BLOCK_METRICS)
    bounced = _get(frame, day, "bounced")
    base = frame.loc[[d for d in frame.index if d < day]]
    base_blocks = float(sum(base[metric].sum() for metric in BLOCK_METRICS if metric in base))
    base_bounced = float(base["bounced"].sum()) if "bounced" in base else 0.0
    share = blocks / bounced if bounced else 0.0
    base_share = base_blocks / base_bounced if base_bounced else 0.0
    details = {"day": day.isoformat(), "blocks": int(blocks), "bounced": int(bounced), "share": share,
               "baseline_share": base_share, "baseline_blocks": int(base_blocks),
               "baseline_bounced": int(base_bounced)}
    spike = (blocks >= cfg.block_spike_min_count and share >= base_share + cfg.block_spike_min_share
             and share >= cfg.block_spike_factor * base_share)
    if not spike:
        return Finding("block_spike", dimension, key, None, details=details)
    severity = "critical" if share >= 0.5 else "warning"
    where = f"at {key}" if dimension == "provider" else f"for {_label(dimension, key)}"
    return Finding("block_spike", dimension, key, severity,
                   f"Block spike {where} on {day}: {int(blocks)} of {int(bounced)} bounces "
                   f"({_pct(share)}) are refusals of the sender, against {_pct(base_share)} over the "
                   f"previous {len(base)} days", details)


def anomaly_findings(frame: pd.DataFrame, day: date, dimension: str, key: str,
                     cfg: AlertsConfig) -> list[Finding]:
    """Today's rate of each watched metric against mean + k·stddev of the baseline days with sends."""
    sent = _get(frame, day, "sent")
    if sent < cfg.min_volume or "sent" not in frame.columns:
        return []
    base = frame.loc[[d for d in frame.index if d < day]]
    base = base[base["sent"] > 0]
    if len(base) < cfg.anomaly_min_days:
        return []
    out = []
    for metric in cfg.anomaly_metrics:
        count = _get(frame, day, metric)
        rates = (base[metric] / base["sent"]) if metric in base.columns else pd.Series([0.0] * len(base))
        mean = float(rates.mean())
        std = float(rates.std(ddof=1)) if len(rates) > 1 else 0.0
        std = 0.0 if math.isnan(std) else std
        line = mean + cfg.anomaly_k * max(std, cfg.anomaly_min_stddev)
        rate = count / sent
        details = {"day": day.isoformat(), "metric": metric, "count": int(count), "sent": int(sent),
                   "rate": rate, "baseline_mean": mean, "baseline_stddev": std, "line": line,
                   "baseline_days": len(base)}
        rule = ANOMALY_PREFIX + metric
        if count >= cfg.anomaly_min_count and rate > line:
            out.append(Finding(rule, dimension, key, "warning",
                               f"Unusual {metric} for {_label(dimension, key)} on {day}: {_pct(rate)} of "
                               f"{int(sent)} sent, against {_pct(mean)} ± {_pct(std)} over the previous "
                               f"{len(base)} sending days (line {_pct(line)})", details))
        else:
            out.append(Finding(rule, dimension, key, None, details=details))
    return out


def dmarc_new_sources(session: Session, day: date, cfg: AlertsConfig) -> list[Finding]:
    """Sources failing DMARC for a From domain that they had never sent for before `new_source_days` ago."""
    since = datetime.combine(day - timedelta(days=max(cfg.new_source_days - 1, 0)), time(), timezone.utc)
    oldest = session.scalar(select(func.min(DmarcRecord.interval_begin)))
    if oldest is None or utc(oldest) >= since:
        return []  # the reports do not reach back before the window yet: every source would look new
    older = aliased(DmarcRecord)
    seen_before = exists().where(and_(older.source_ip == DmarcRecord.source_ip,
                                      older.header_from == DmarcRecord.header_from,
                                      older.interval_begin < since))
    rows = session.execute(
        select(DmarcRecord.header_from, DmarcAggregateReport.domain, DmarcRecord.source_ip,
               DmarcRecord.count, DmarcRecord.interval_begin, DmarcAggregateReport.org_name,
               DmarcRecord.source_reverse_dns)
        .join(DmarcAggregateReport, DmarcRecord.report_id == DmarcAggregateReport.id)
        .where(DmarcRecord.interval_begin >= since, DmarcRecord.dmarc_pass.is_(False), ~seen_before)
        .order_by(DmarcRecord.interval_begin))
    found: dict[str, dict[str, Any]] = {}
    for header_from, domain, ip, count, begin, org, rdns in rows:
        domain = (header_from or domain or "").lower()
        k = f"{domain} {ip}"
        entry = found.setdefault(k, {"domain": domain, "source_ip": ip, "messages": 0, "reporters": [],
                                     "first_seen": begin.date().isoformat() if begin else None,
                                     "reverse_dns": rdns})
        entry["messages"] += int(count or 0)
        if org not in entry["reporters"]:
            entry["reporters"].append(org)
    return [Finding("dmarc_new_source", "dmarc_source", k, "warning",
                    f"New source failing DMARC for {e['domain']}: {e['source_ip']}"
                    f"{' (' + e['reverse_dns'] + ')' if e['reverse_dns'] else ''} sent {e['messages']} "
                    f"message(s) since {e['first_seen']}, reported by {', '.join(e['reporters'])}", e)
            for k, e in found.items()]


def evaluate(session: Session, cfg: AlertsConfig, day: date) -> list[Finding]:
    """Every rule's judgement for `day`."""
    start = day - timedelta(days=cfg.baseline_days)
    findings: list[Finding] = []
    for dimension, key in entities(session, start, day, cfg.dimensions):
        frame = metrics(session, start, day, dimension, key)
        findings += threshold_findings(frame, day, dimension, key, cfg)
        findings += anomaly_findings(frame, day, dimension, key, cfg)
    findings += dmarc_new_sources(session, day, cfg)
    findings += provider_findings(session, day, cfg)
    return [_with_tls_results(session, f, day) for f in findings]


def provider_findings(session: Session, day: date, cfg: AlertsConfig) -> list[Finding]:
    """The providers' own figures of `day`: Gmail's user-reported spam rate of a domain against
    its two lines; an SNDS IP YELLOW (warning) or RED (critical); an IP range the SNDS status
    list blocks (critical); a Postmaster Tools compliance requirement at needs_work (warning)."""
    from analysis import provider_view as pv

    out = []
    for domain, rate in sorted(pv.gmail_spam_rate_on(session, day).items()):
        severity = ("critical" if rate >= cfg.gmail_spam_rate_critical else
                    "warning" if rate >= cfg.gmail_spam_rate_warning else None)
        line = cfg.gmail_spam_rate_critical if severity == "critical" else cfg.gmail_spam_rate_warning
        out.append(Finding("gmail_spam_rate", "sending_domain", domain, severity,
                           f"Gmail user-reported spam rate {_pct(rate)} for {domain} on {day} (Google Postmaster "
                           f"Tools): at or above the {severity} line {_pct(line)}" if severity else "",
                           {"day": day.isoformat(), "rate": rate, "warning": cfg.gmail_spam_rate_warning,
                            "critical": cfg.gmail_spam_rate_critical, "source": "postmaster"}))
    for ip, a in sorted(pv.snds_on(session, day).items()):
        severity = {"RED": "critical", "YELLOW": "warning"}.get(a.filter_result)
        out.append(Finding("snds_filter", "sending_ip", ip, severity,
                           f"Microsoft SNDS rates {ip} {a.filter_result} on {day} (complaint rate "
                           f"{a.complaint_rate_text or 'not given'}, {a.trap_hits} trap hit(s), {a.recipients} "
                           "recipient(s))" if severity else "",
                           {"day": day.isoformat(), "colour": a.filter_result, "complaint_rate": a.complaint_rate,
                            "trap_hits": a.trap_hits, "recipients": a.recipients, "source": "snds"}))
    statuses = pv.status_list(session, day)
    if statuses.day is not None:
        listed = {pv.range_key(r): r for r in statuses.ranges}
        opened = session.scalars(select(Alert.key).where(Alert.status == "open", Alert.rule == "snds_blocked"))
        for key in sorted(set(listed) | set(opened)):
            r = listed.get(key)
            blocked = r is not None and r.blocked
            out.append(Finding("snds_blocked", "sending_ip", key, "critical" if blocked else None,
                               f"Microsoft SNDS blocks {key} (IP status list read on {statuses.day}): "
                               f"{r.details or 'no details given'}" if blocked and r else "",
                               {"day": day.isoformat(), "read_on": statuses.day.isoformat(),
                                "details": r.details if r else None, "source": "snds"}))
    for (domain, requirement), states in sorted(pv.compliance_on(session, day).items()):
        latest = states[0]
        changed = pv.changed_from(states)
        before = changed.state if changed else None
        needs_work = latest.state == "needs_work"
        out.append(Finding("gmail_compliance", "gmail_compliance", f"{domain} {requirement}",
                           "warning" if needs_work else None,
                           f"Google Postmaster Tools: {requirement.replace('_', ' ')} of {domain} needs work "
                           f"(read on {latest.day}{', was ' + before if before else ''}"
                           f"{'; reason ' + latest.reason if latest.reason else ''})" if needs_work else "",
                           {"day": day.isoformat(), "domain": domain, "requirement": requirement,
                            "state": latest.state, "previous_state": before, "reason": latest.reason,
                            "source": "postmaster"}))
    return out


def _with_tls_results(session: Session, f: Finding, day: date) -> Finding:
    """A TLS alert of a policy domain names the TLS-RPT result types behind its failures
    (certificate-expired, starttls-not-supported, validation-failure, sts-policy-invalid ...)."""
    if f.rule != "tls_failure_rate" or f.severity is None or f.dimension != "sending_domain":
        return f
    start = datetime.combine(day, time(), timezone.utc)
    rows = session.execute(
        select(TlsFailureDetail.result_type, func.sum(TlsFailureDetail.failed_sessions))
        .join(TlsPolicy, TlsPolicy.id == TlsFailureDetail.policy_id).join(TlsReport, TlsReport.id == TlsPolicy.report_id)
        .where(func.lower(TlsPolicy.policy_domain) == f.key, TlsReport.begin >= start,
               TlsReport.begin < start + timedelta(days=1))
        .group_by(TlsFailureDetail.result_type).order_by(func.sum(TlsFailureDetail.failed_sessions).desc())).all()
    if not rows:
        return f
    types = {str(t): int(n or 0) for t, n in rows}
    text = ", ".join(f"{t}: {n}" for t, n in types.items())
    return Finding(f.rule, f.dimension, f.key, f.severity, f"{f.message} — {text}",
                   {**f.details, "result_types": types})


# ---------------------------------------------------------------- acting on the judgements

def apply(session: Session, findings: list[Finding], now: datetime, cfg: AlertsConfig) -> dict[str, int]:
    """Raise the firing findings, resolve what is clear (or stale); returns what changed."""
    counts = {"opened": 0, "escalated": 0, "resolved": 0, "open": 0}
    judged: set[tuple[str, str, str]] = set()
    firing: set[tuple[str, str, str]] = set()
    for f in findings:
        ident = (f.rule, f.dimension, f.key)
        judged.add(ident)
        if f.severity is None:
            continue
        firing.add(ident)
        before = session.scalars(select(Alert.severity).where(
            Alert.status == "open", Alert.rule == f.rule, Alert.dimension == f.dimension,
            Alert.key == f.key)).first()
        _, created = raise_alert(session, rule=f.rule, dimension=f.dimension, key=f.key, severity=f.severity,
                                 message=f.message, now=now, details=f.details)
        if created:
            counts["opened"] += 1
        elif before is not None and SEVERITIES.index(f.severity) > SEVERITIES.index(before):
            counts["escalated"] += 1
    stale_before = now - timedelta(hours=cfg.stale_hours)
    for alert in session.scalars(select(Alert).where(Alert.status == "open")).all():
        if not owns(alert.rule) or utc(alert.opened_at) > now:
            continue  # a past day judged again says nothing of an episode that began after it
        ident = (alert.rule, alert.dimension, alert.key)
        if ident in firing:
            counts["open"] += 1
            continue
        # a new-source alert is judged by its absence: the source is no longer new
        clear = ident in judged or alert.rule == "dmarc_new_source"
        if clear or utc(alert.last_seen_at) < stale_before:
            resolve_alert(session, alert, now)
            counts["resolved"] += 1
        else:
            counts["open"] += 1
    session.flush()
    return counts


def days_to_judge(session: Session, today: date, cfg: AlertsConfig) -> list[date]:
    """From the earliest day whose rollups changed since it was judged (or the day after the
    last judged one, after downtime) to `today`, in order; at most `catch_up_days`."""
    unjudged = session.scalar(select(func.min(AlertDay.day)).where(AlertDay.judged_at.is_(None),
                                                                   AlertDay.day <= today))
    judged = session.scalar(select(func.max(AlertDay.day)).where(AlertDay.judged_at.is_not(None),
                                                                 AlertDay.day <= today))
    starts = [as_date(unjudged)] if unjudged is not None else []
    if judged is not None:
        starts.append(as_date(judged) + timedelta(days=1))
    start = max(min(starts + [today]), today - timedelta(days=max(cfg.catch_up_days, 1) - 1))
    return [start + timedelta(days=i) for i in range((today - start).days + 1)]


def judge_day(session: Session, cfg: AlertsConfig, day: date, now: datetime) -> dict[str, int]:
    """Judge one day as if the job ran at its end (or now, for today): open, refresh and
    resolve its alerts dated that day."""
    at = now if day >= now.date() else datetime.combine(day, time(23, 59, 59), timezone.utc)
    counts = apply(session, evaluate(session, cfg, day), at, cfg)
    stmt = upsert_insert(session)(AlertDay.__table__)
    session.execute(stmt.on_conflict_do_update(index_elements=["day"], set_={"judged_at": stmt.excluded.judged_at}),
                    [{"day": day, "changed_at": now, "judged_at": now}])
    return counts


def judge(session: Session, cfg: AlertsConfig, now: datetime, since: date | None = None) -> dict[str, int]:
    """Every day to judge (from `since`, when given) up to today, in order."""
    today = now.date()
    if since is not None:
        mark_days_to_judge(session, {since + timedelta(days=i) for i in range((today - since).days + 1)}, now)
    total = {"opened": 0, "escalated": 0, "resolved": 0, "open": 0, "days": 0}
    for day in days_to_judge(session, today, cfg):
        counts = judge_day(session, cfg, day, now)
        for k in ("opened", "escalated", "resolved"):
            total[k] += counts[k]
        total["open"] = counts["open"]
        total["days"] += 1
    return total


@job("alerts", every=timedelta(minutes=15), order=40)
def alerts_job(ctx: JobContext) -> int:
    """Judge the rollups of every day not yet judged, up to today, against the alert rules;
    open, refresh and resolve alerts, dated the day they judge."""
    now = ctx.clock()
    cfg: AlertsConfig = ctx.settings.alerts
    with ctx.sessions.begin() as session:
        counts = judge(session, cfg, now, since=getattr(ctx, "since", None))
    return counts["opened"] + counts["escalated"] + counts["resolved"]
