"""The figures of one digest, read from the store: rollups (through `metrics_frame`), scores,
alerts, blocklist results, suppression changes, DMARC sources; the only event-table reads are
small top-N queries on indexed time columns (diagnostic texts, TLS failure details).

Every table a chart draws is a `Table` here, so the chart, its CSV attachment and the plain
text all show the same rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from analysis.digest.schedule import Period, Scope
from analysis.evidence import complaint_base
from analysis.rollups import NOT_BOUNCES, REPUTATION_BLOCKS, metrics_frame
from store.alerts import SEVERITIES, Alert
from store.checks import BlocklistCheck
from store.models import BounceEvent, TlsFailureDetail, TlsPolicy, TlsReport
from store.rollups import Rollup, Score
from store.suppressions import SuppressionChange
from store.volume import SendLog


@dataclass(frozen=True)
class Table:
    name: str  # file name of its CSV (NAME.csv) and, when drawn, its chart (NAME.png)
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def __bool__(self) -> bool:
        return bool(self.rows)


@dataclass(frozen=True)
class Figure:
    """One headline figure, with the previous period's value and, for rates, the lines."""

    name: str
    label: str
    value: float | int | None
    previous: float | int | None
    rate: bool = False
    lines: tuple[float, float] | None = None  # (warning, critical) for rates with providers' lines
    higher_is_better: bool = False

    @property
    def change(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous

    @property
    def status(self) -> str:
        """ok | warning | critical against the lines; '' without lines or data."""
        if self.lines is None or self.value is None:
            return ""
        if self.value >= self.lines[1]:
            return "critical"
        if self.value >= self.lines[0]:
            return "warning"
        return "ok"


@dataclass(frozen=True)
class ProviderGrade:
    provider: str
    day: date
    score: float
    grade: str
    previous_score: float | None
    previous_grade: str | None
    moved_by: str  # what moved it, in a few words


@dataclass
class Digest:
    period: Period
    previous: Period
    scope: Scope
    generated_at: datetime
    has_data: bool
    figures: list[Figure]
    volume: Table  # day by day: a chart
    complaint_days: Table  # day by day: a chart with the providers' lines
    reasons: Table  # top bounce reasons: a chart
    diagnostics: Table
    campaigns: Table  # complaints by campaign
    campaigns_note: str
    dmarc: Table  # DMARC compliance per domain: a chart
    sources: Table  # new or unknown DMARC sources
    impact: Table  # what p=quarantine/reject would do
    tls: Table  # TLS failure details
    providers: list[ProviderGrade]
    providers_note: str
    blocklists: Table
    suppressions: Table
    alerts: list[Alert]
    alerts_opened: int
    dashboard_url: str
    lines: dict[str, float] = field(default_factory=dict)

    def figure(self, name: str) -> Figure:
        return next(f for f in self.figures if f.name == name)


# ---------------------------------------------------------------- reading

def _scope_frame(session: Session, period: Period, scope: Scope):
    """Daily metrics of the scope: `all`, or the sum of its domains' or campaigns' rows."""
    if scope.domains:
        dimension, keys = "sending_domain", scope.domains
    elif scope.campaigns:
        dimension, keys = "campaign", scope.campaigns
    else:
        return metrics_frame(session, period.start, period.end, "all", "")
    frame = None
    for key in keys:
        one = metrics_frame(session, period.start, period.end, dimension, key)
        frame = one if frame is None else frame.add(one, fill_value=0)
    return frame.fillna(0).astype("int64")


def _totals(frame) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame.sum(axis=0).items()} if len(frame.columns) else {}


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _figures(now: dict[str, int], before: dict[str, int], settings: Any) -> list[Figure]:
    a = settings.alerts
    tls_now = now.get("tls.ok", 0) + now.get("tls.failed", 0)
    tls_before = before.get("tls.ok", 0) + before.get("tls.failed", 0)

    def count(name: str, label: str, metric: str, better: bool = False) -> Figure:
        return Figure(name, label, now.get(metric, 0), before.get(metric, 0), higher_is_better=better)

    def rate(name: str, label: str, num: str | tuple[str, ...], den: str, lines=None, better: bool = False) -> Figure:
        nums = (num,) if isinstance(num, str) else num
        return Figure(name, label, _rate(sum(now.get(n, 0) for n in nums), now.get(den, 0)),
                      _rate(sum(before.get(n, 0) for n in nums), before.get(den, 0)), True, lines, better)

    return [
        count("sent", "Sent", "sent", True),
        rate("delivery_rate", "Delivered", "delivered", "sent", better=True),
        rate("bounce_rate", "Bounced", "bounced", "sent"),
        rate("hard_bounce_rate", "Hard bounces", "hard", "sent",
             (a.hard_bounce_rate_warning, a.hard_bounce_rate_critical)),
        # refused, finally or for now (a TSS04 deferral)
        rate("block_rate", "Blocked (reputation)", REPUTATION_BLOCKS, "sent"),
        count("complaints", "Complaints", "complaints"),
        Figure("complaint_rate", "Complaint rate", _rate(now.get("complaints", 0), _complaint_base(now)),
               _rate(before.get("complaints", 0), _complaint_base(before)), True,
               (a.complaint_rate_warning, a.complaint_rate_critical)),
        count("dmarc_messages", "DMARC-reported messages", "dmarc.messages", True),
        rate("dmarc_pass_rate", "DMARC pass", "dmarc.pass", "dmarc.messages", better=True),
        Figure("tls_failure_rate", "TLS failures", _rate(now.get("tls.failed", 0), tls_now),
               _rate(before.get("tls.failed", 0), tls_before), True,
               (a.tls_failure_rate_warning, a.tls_failure_rate_critical)),
    ]


def _complaint_base(m) -> int:
    """The sends that could complain: to providers that send complaint reports, when any."""
    return int(complaint_base(int(m.get("sent", 0)), int(m.get("sent.fbl", 0)))[0])


def _days(frame) -> tuple[Table, Table]:
    """Day by day: the volume and the complaint rate (two charts, two CSV files)."""
    volume, complaints = [], []
    for day, r in frame.iterrows():
        sent = int(r.get("sent", 0))
        volume.append((day, sent, int(r.get("delivered", 0)), int(r.get("bounced", 0)), int(r.get("hard", 0))))
        n = int(r.get("complaints", 0))
        base = _complaint_base(r)
        complaints.append((day, sent, n, round(n / base, 6) if base else None))
    return (Table("volume", "Sent, delivered and bounced, day by day",
                  ("day", "sent", "delivered", "bounced", "hard"), volume),
            Table("complaint_rate", "Complaint rate, day by day",
                  ("day", "sent", "complaints", "complaint_rate"), complaints))


def _reasons(totals: dict[str, int], top: int) -> Table:
    from ingest.bounce.rules import CATEGORY

    bounced = totals.get("bounced", 0)
    found = [(m[len("reason."):], n) for m, n in totals.items() if m.startswith("reason.") and n]
    found = [(r, n) for r, n in found if CATEGORY.get(r, "unknown") not in NOT_BOUNCES]
    found.sort(key=lambda x: (-x[1], x[0]))
    rows = [(r, CATEGORY.get(r, "unknown"), n, round(n / bounced, 4) if bounced else None) for r, n in found[:top]]
    return Table("bounce_reasons", "Top bounce reasons", ("reason", "category", "bounces", "share"), rows)


def _bounds(period: Period) -> tuple[datetime, datetime]:
    return (datetime.combine(period.start, time(0), timezone.utc),
            datetime.combine(period.end + timedelta(days=1), time(0), timezone.utc))


def _diagnostics(session: Session, period: Period, scope: Scope, top: int) -> Table:
    b, s = BounceEvent, SendLog
    lo, hi = _bounds(period)
    query = (select(b.reason, b.diagnostic, func.count()).select_from(b)
             .where(b.occurred_at >= lo, b.occurred_at < hi, b.category.not_in(NOT_BOUNCES),
                    b.diagnostic.is_not(None)))
    if scope.domains or scope.campaigns:
        query = query.outerjoin(s, s.id == b.send_id)
        if scope.domains:
            query = query.where(func.coalesce(s.sending_domain, b.from_domain).in_(scope.domains))
        else:
            query = query.where(func.coalesce(s.campaign, b.campaign).in_(scope.campaigns))
    query = query.group_by(b.reason, b.diagnostic).order_by(func.count().desc(), b.reason).limit(top)
    rows = [(reason, " ".join((text or "").split())[:300], n) for reason, text, n in session.execute(query)]
    return Table("diagnostics", "Most frequent diagnostic texts", ("reason", "diagnostic", "bounces"), rows)


def _campaigns(session: Session, period: Period, scope: Scope, top: int) -> Table:
    query = (select(Rollup.key, Rollup.metric, func.sum(Rollup.value))
             .where(Rollup.dimension == "campaign", Rollup.day >= period.start, Rollup.day <= period.end,
                    Rollup.metric.in_(("sent", "complaints")))
             .group_by(Rollup.key, Rollup.metric))
    if scope.campaigns:
        query = query.where(Rollup.key.in_(scope.campaigns))
    by: dict[str, dict[str, int]] = {}
    for key, metric, value in session.execute(query):
        by.setdefault(key, {})[metric] = int(value)
    rows = [(key or "(unknown)", m.get("sent", 0), m.get("complaints", 0),
             round(m["complaints"] / m["sent"], 6) if m.get("sent") and m.get("complaints") else
             (0.0 if m.get("sent") else None))
            for key, m in by.items() if m.get("complaints")]
    rows.sort(key=lambda r: (-r[2], r[0]))
    return Table("complaints_by_campaign", "Complaints by campaign",
                 ("campaign", "sent", "complaints", "complaint_rate"), rows[:top])


def _dmarc(session: Session, period: Period, scope: Scope, top: int) -> Table:
    metrics = ("dmarc.messages", "dmarc.pass", "dmarc.aligned", "dmarc.source.unknown")
    query = (select(Rollup.key, Rollup.metric, func.sum(Rollup.value))
             .where(Rollup.dimension == "sending_domain", Rollup.day >= period.start, Rollup.day <= period.end,
                    Rollup.metric.in_(metrics)).group_by(Rollup.key, Rollup.metric))
    if scope.domains:
        query = query.where(Rollup.key.in_(scope.domains))
    by: dict[str, dict[str, int]] = {}
    for key, metric, value in session.execute(query):
        by.setdefault(key, {})[metric] = int(value)
    rows = []
    for key, m in by.items():
        n = m.get("dmarc.messages", 0)
        if n:
            rows.append((key, n, m.get("dmarc.pass", 0), m.get("dmarc.aligned", 0), m.get("dmarc.source.unknown", 0),
                         round(m.get("dmarc.pass", 0) / n, 4)))
    rows.sort(key=lambda r: (-r[1], r[0]))
    return Table("dmarc_compliance", "DMARC compliance per domain",
                 ("domain", "messages", "dmarc_pass", "dkim_aligned", "from_unknown_sources", "pass_rate"), rows[:top])


def _sources(session: Session, period: Period, domains: list[str], top: int) -> Table:
    """The period's new sources and its sources of unknown class, with their mail in the period."""
    from analysis.dmarc_intel import window_sources

    if not domains:
        return Table("dmarc_sources", "New or unknown sources", (), [])
    wanted = set(domains)
    found = [w for w in window_sources(session, period.start, period.end)
             if w.domain in wanted and (w.first_seen >= period.start or w.source_class in ("unknown", ""))]
    rows = [(w.domain, w.source_ip, w.reverse_dns or w.base_domain or "", w.source_class or "unknown",
             "new" if w.first_seen >= period.start else "", w.messages, w.passed) for w in found[:top]]
    return Table("dmarc_sources", "New or unknown DMARC sources",
                 ("domain", "source_ip", "name", "class", "new", "messages", "dmarc_pass"), rows)


def _impact(session: Session, period: Period, domains: list[str]) -> Table:
    from analysis.dmarc_intel import impact

    rows = []
    for domain in domains:
        day = session.scalar(select(func.max(Rollup.day)).where(
            Rollup.dimension == "sending_domain", Rollup.key == domain, Rollup.metric == "dmarc.messages",
            Rollup.day >= period.start, Rollup.day <= period.end))
        if day is None:
            continue
        effect = impact(session, domain, day)
        rows.append((domain, effect.day, effect.current_policy or "?", effect.legitimate, effect.would_fail,
                     round(effect.share_lost, 4)))
    return Table("dmarc_impact", "Impact if p=reject", ("domain", "day", "policy_now", "legitimate_messages",
                                                         "would_fail", "share_lost"), rows)


def _tls(session: Session, period: Period, scope: Scope, top: int) -> Table:
    t, p, f = TlsReport, TlsPolicy, TlsFailureDetail
    lo, hi = _bounds(period)
    query = (select(p.policy_domain, f.result_type, f.receiving_mx_hostname, func.sum(f.failed_sessions))
             .join(p, p.id == f.policy_id).join(t, t.id == p.report_id)
             .where(t.begin >= lo, t.begin < hi))
    if scope.domains:
        query = query.where(func.lower(p.policy_domain).in_(scope.domains))
    query = (query.group_by(p.policy_domain, f.result_type, f.receiving_mx_hostname)
             .order_by(func.sum(f.failed_sessions).desc()).limit(top))
    rows = [(dom, result, mx or "", int(n or 0)) for dom, result, mx, n in session.execute(query)]
    return Table("tls_failures", "TLS failures", ("policy_domain", "result_type", "receiving_mx", "sessions"), rows)


def _providers(session: Session, period: Period, previous: Period) -> list[ProviderGrade]:
    def latest(p: Period) -> dict[str, Score]:
        newest = (select(Score.key, func.max(Score.day).label("day"))
                  .where(Score.dimension == "provider", Score.day >= p.start, Score.day <= p.end)
                  .group_by(Score.key).subquery())
        rows = session.scalars(select(Score).join(newest, (Score.key == newest.c.key) & (Score.day == newest.c.day))
                               .where(Score.dimension == "provider"))
        return {s.key: s for s in rows}

    now, before = latest(period), latest(previous)
    out = []
    for key, s in sorted(now.items(), key=lambda kv: (kv[1].score, kv[0])):
        b = before.get(key)
        out.append(ProviderGrade(key or "(unknown)", s.day, s.score, s.grade, b.score if b else None,
                                 b.grade if b else None, _moved_by(s.components or {},
                                                                   (b.components or {}) if b else None)))
    return out


_COMPONENTS = {"complaints": "complaints", "hard_bounces": "hard bounces", "blocks": "blocks",
               "dmarc_unaligned": "DMARC unaligned", "tls_failures": "TLS failures", "blocklists": "blocklists"}


def _moved_by(now: dict[str, Any], before: dict[str, Any] | None) -> str:
    """The component whose lost points changed most (or, with no earlier score, lost most)."""
    best, best_delta = None, 0.0
    for name in _COMPONENTS:
        lost = float((now.get(name) or {}).get("lost") or 0)
        was = float(((before or {}).get(name) or {}).get("lost") or 0)
        delta = lost - was if before is not None else lost
        if abs(delta) > abs(best_delta) + 1e-9:
            best, best_delta = name, delta
    caps = now.get("caps") or []
    if best is None:
        return "capped: complaint recovery" if caps else "nothing lost"
    c = now.get(best) or {}
    rate = c.get("rate")
    what = _COMPONENTS[best] + (f" {rate * 100:.2f}%" if isinstance(rate, (int, float)) else "")
    if before is None:
        text = f"{what} (-{c.get('lost', 0):.1f} points)"
    else:
        text = f"{what} ({'+' if best_delta < 0 else '-'}{abs(best_delta):.1f} points)"
    return text + ("; capped" if caps else "")


def _blocklists(session: Session, period: Period) -> Table:
    """The listings of the period, then the days a zone gave no answer that counts (`unknown`,
    with the last day's reason): those are not clean days, so they are shown too."""
    c = BlocklistCheck
    in_period = (c.day >= period.start, c.day <= period.end)
    query = (select(c.dimension, c.key, c.zone, func.count(), func.max(c.day))
             .where(*in_period, c.listed.is_(True))
             .group_by(c.dimension, c.key, c.zone).order_by(c.dimension, c.key, c.zone))
    rows = [(dim.replace("sending_", ""), key, zone, "listed", int(days), last)
            for dim, key, zone, days, last in session.execute(query)]
    unknown: dict[tuple[str, str, str], list] = {}
    # `error` is what rows written before `unknown` existed say
    for dim, key, zone, day, error in session.execute(
            select(c.dimension, c.key, c.zone, c.day, c.error)
            .where(*in_period, c.listed.is_(False), c.status.in_(("unknown", "error")))
            .order_by(c.dimension, c.key, c.zone, c.day)):
        seen = unknown.setdefault((dim, key, zone), [0, day, error])
        seen[0], seen[1], seen[2] = seen[0] + 1, day, error
    rows += [(dim.replace("sending_", ""), key, zone, f"unknown: {error or 'no answer'}", days, last)
             for (dim, key, zone), (days, last, error) in unknown.items()]
    title = "Blocklist listings and unknown results" if unknown else "Blocklist listings"
    return Table("blocklists", title, ("kind", "target", "zone", "state", "days", "last_day"), rows)


def _suppressions(session: Session, period: Period, previous: Period) -> Table:
    def counts(p: Period) -> dict[tuple[str, str], int]:
        lo, hi = _bounds(p)
        c = SuppressionChange
        query = (select(c.op, c.reason, func.count()).where(c.at >= lo, c.at < hi).group_by(c.op, c.reason))
        return {(op, reason): int(n) for op, reason, n in session.execute(query)}

    now, before = counts(period), counts(previous)
    rows = [(op, reason, now.get((op, reason), 0), before.get((op, reason), 0))
            for op, reason in sorted(set(now) | set(before), key=lambda k: (k[0] != "add", k[1]))
            if now.get((op, reason), 0)]
    return Table("suppression_changes", "Suppression changes", ("op", "reason", "count", "previous_period"), rows)


def _alerts(session: Session, period: Period) -> tuple[list[Alert], int]:
    open_ = list(session.scalars(select(Alert).where(Alert.status == "open").order_by(Alert.opened_at)))
    open_.sort(key=lambda a: -SEVERITIES.index(a.severity))
    lo, hi = _bounds(period)
    opened = session.scalar(select(func.count()).select_from(Alert).where(Alert.opened_at >= lo,
                                                                           Alert.opened_at < hi)) or 0
    return open_, int(opened)


def dashboard_url(base_url: str, path: str, period: Period, scope: Scope) -> str:
    params: list[tuple[str, str]] = [("start", period.start.isoformat()), ("end", period.end.isoformat())]
    params += [("domain", d) for d in scope.domains] + [("campaign", c) for c in scope.campaigns]
    return base_url.rstrip("/") + path + "?" + urlencode(params)


def gather(session: Session, settings: Any, period: Period, scope: Scope, now: datetime) -> Digest:
    """Every figure of the digest for `period` and `scope`, against the previous period."""
    top = settings.reports.top
    previous = period.previous()
    frame = _scope_frame(session, period, scope)
    totals, before = _totals(frame), _totals(_scope_frame(session, previous, scope))
    has_data = any(v for v in totals.values())
    dmarc = _dmarc(session, period, scope, top)
    domains = list(scope.domains) or [r[0] for r in dmarc.rows]
    alerts, opened = _alerts(session, period)
    volume, complaint_days = _days(frame)
    campaigns = _campaigns(session, period, scope, top)
    return Digest(
        period=period, previous=previous, scope=scope, generated_at=now, has_data=has_data,
        figures=_figures(totals, before, settings), volume=volume, complaint_days=complaint_days, reasons=_reasons(totals, top),
        diagnostics=_diagnostics(session, period, scope, top), campaigns=campaigns,
        campaigns_note="over all sending domains (the rollups count campaigns and domains apart)"
        if scope.domains else "",
        dmarc=dmarc, sources=_sources(session, period, domains, top), impact=_impact(session, period, domains),
        tls=_tls(session, period, scope, top), providers=_providers(session, period, previous),
        providers_note="" if not (scope.domains or scope.campaigns) else "over all mail, not only this digest's scope",
        blocklists=_blocklists(session, period), suppressions=_suppressions(session, period, previous),
        alerts=alerts, alerts_opened=opened,
        dashboard_url=dashboard_url(settings.web.base_url, settings.reports.dashboard_path, period, scope),
        lines={"complaint_warning": settings.alerts.complaint_rate_warning,
               "complaint_critical": settings.alerts.complaint_rate_critical})
