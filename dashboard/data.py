"""Every query the dashboard's pages make: rollups, scores and small aggregate tables.

Charts read `rollups` and `scores` (a few thousand rows for any range), never the event
tables. The only reads of events are bounded: the bounce table, paged on the server through
the (occurred_at) index, one raw message by id, and the top diagnostic texts of the newest
bounces of the range (at most DIAGNOSTIC_SAMPLE rows, through the same index).
"""
from __future__ import annotations

import email
import email.policy
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Text, cast, func, literal_column, select
from sqlalchemy.orm import Session

from analysis.evidence import complaint_base
from analysis.rollups import REPUTATION_BLOCKS
from store.columns import as_date, day_start, json_list, utc_day
from dashboard.components import pct
from dashboard.filters import UNKNOWN, Filters, key_of, label
from store.alerts import Alert
from store.checks import JobRun, PostureCheck
from store.dmarc_sources import DmarcSource
from store.models import BounceEvent, DmarcRecord, InboundMessage, TlsFailureDetail, TlsPolicy, TlsReport
from store.rollups import Rollup, Score
from store.suppressions import Suppression, SuppressionChange

DIAGNOSTIC_SAMPLE = 2000
SELECTOR_SAMPLE = 20000
EVENT_COLUMNS = ("id", "occurred_at", "recipient", "provider", "from_domain", "sending_ip", "campaign", "status",
                 "reply_code", "reason", "category", "diagnostic")


def day_after(d: date) -> datetime:
    return day_start(d + timedelta(days=1))


def ratio(num: float, den: float) -> float | None:
    return num / den if den else None


# ---------------------------------------------------------------- rollups

def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _daily_wide(rows, start: date, end: date) -> pd.DataFrame:
    """(day, column, value) rows as a frame: every day of [start, end] a row, zeros where absent.

    Plain dicts, not pandas' pivot_table: the pivot cost more than the query behind it."""
    days = _days(start, end)
    position = {d: i for i, d in enumerate(days)}
    columns: dict[str, list[int]] = {}
    for d, name, value in rows:
        i = position.get(d if type(d) is date else as_date(d))
        if i is None:
            continue
        name = label(name)
        column = columns.get(name)
        if column is None:
            column = columns[name] = [0] * len(days)
        column[i] += int(value or 0)
    index = pd.Index(days, name="day")
    if not columns:
        return pd.DataFrame(index=index)
    return pd.DataFrame(columns, index=index, dtype="int64")

def daily(session: Session, f: Filters, start: date | None = None) -> pd.DataFrame:
    """Daily metrics of the filters' entity from `start` (default f.start) to f.end: the frame
    analysis.rollups.metrics_frame gives, built without pandas' pivot."""
    dimension, key = f.entity()
    start = start or f.start
    rows = session.execute(select(Rollup.day, Rollup.metric, Rollup.value).where(
        Rollup.dimension == dimension, Rollup.key == key, Rollup.day >= start, Rollup.day <= f.end)).all()
    return _daily_wide(rows, start, f.end)


def col(frame: pd.DataFrame, metric: str) -> pd.Series:
    """A metric's column, zeros when the rollups never saw it."""
    if metric in frame.columns:
        return frame[metric]
    return pd.Series(0, index=frame.index, dtype="int64")


def prefixed(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """The columns `prefix.X`, renamed X."""
    cols = [c for c in frame.columns if c.startswith(prefix)]
    out = frame[cols].copy()
    out.columns = [c[len(prefix):] for c in cols]
    return out


def complaint_rates(frame: pd.DataFrame) -> pd.Series:
    """Complaints per day over the sends that could complain (analysis.evidence.complaint_base)."""
    sent, fbl = col(frame, "sent"), col(frame, "sent.fbl")
    base = fbl.where(fbl > 0, sent)
    return col(frame, "complaints") / base.where(base > 0)


def kpis(frame: pd.DataFrame) -> dict[str, float | int | None]:
    """The headline figures of a period from its daily metrics."""
    total = {m: int(frame[m].sum()) for m in frame.columns}
    sent = total.get("sent", 0)
    dmarc = total.get("dmarc.messages", 0)
    return {"sent": sent, "delivered": total.get("delivered", 0), "bounced": total.get("bounced", 0),
            "delivery_rate": ratio(sent - total.get("bounced", 0), sent),
            "hard_bounce_rate": ratio(total.get("hard", 0), sent),
            "complaint_rate": ratio(total.get("complaints", 0), complaint_base(sent, total.get("sent.fbl", 0))[0]),
            "complaints": total.get("complaints", 0),
            "dmarc_messages": dmarc,
            "dmarc_aligned_rate": ratio(total.get("dmarc.aligned", 0), dmarc),
            "dmarc_pass_rate": ratio(total.get("dmarc.pass", 0), dmarc)}


def by_key(session: Session, dimension: str, start: date, end: date, metrics: tuple[str, ...] | None = None,
           prefix: str | None = None) -> pd.DataFrame:
    """Totals over [start, end] per key of `dimension`: one row per key, one column per metric."""
    query = (select(Rollup.key, Rollup.metric, func.sum(Rollup.value))
             .where(Rollup.dimension == dimension, Rollup.day >= start, Rollup.day <= end)
             .group_by(Rollup.key, Rollup.metric))
    if metrics:
        query = query.where(Rollup.metric.in_(metrics))
    if prefix:
        query = query.where(Rollup.metric.like(prefix + "%"))
    table: dict[str, dict[str, int]] = {}
    for key, metric, value in session.execute(query):
        table.setdefault(metric, {})[key] = int(value or 0)
    if not table:
        return pd.DataFrame()
    return pd.DataFrame(table).fillna(0).astype("int64")


def daily_by_key(session: Session, dimension: str, metric: str, start: date, end: date) -> pd.DataFrame:
    """One metric per day (rows) and key (columns) of `dimension`."""
    rows = session.execute(select(Rollup.day, Rollup.key, Rollup.value).where(
        Rollup.dimension == dimension, Rollup.metric == metric, Rollup.day >= start, Rollup.day <= end)).all()
    return _daily_wide(rows, start, end)


def sends_by_source(session: Session, start: date, end: date) -> pd.DataFrame:
    """Sends per day (rows) by where they were counted (columns): `send_log` (postwatch's own
    sender), `csv` (volume import), `log:postfix` ... (MTA logs), `webhook:ses` ... (ESP
    webhooks) — all mail, whatever the filters."""
    from analysis.volume import by_origin

    return _daily_wide(by_origin(session, start, end), start, end)


def keys(session: Session, dimension: str, start: date, end: date) -> list[str]:
    """The keys of `dimension` with rollups in the range (the filter bar's choices), '' (not
    attributed) among them."""
    return list(session.scalars(select(Rollup.key).where(
        Rollup.dimension == dimension, Rollup.day >= start, Rollup.day <= end).distinct().order_by(Rollup.key)))


def matches(column, value: str):
    """`column` equals a filter's value; UNKNOWN matches what is not attributed (NULL or '')."""
    if value == UNKNOWN:
        return (column.is_(None)) | (column == "")
    return column == value


# ---------------------------------------------------------------- scores and alerts

def scores(session: Session, dimension: str, start: date, end: date, key: str | None = None) -> list[Score]:
    query = select(Score).where(Score.dimension == dimension, Score.day >= start, Score.day <= end)
    if key is not None:
        query = query.where(Score.key == key)
    return list(session.scalars(query.order_by(Score.key, Score.day)))


def latest_scores(session: Session, dimension: str, start: date, end: date) -> list[Score]:
    """The newest score of each key of `dimension` within the range."""
    newest = (select(Score.key, func.max(Score.day).label("day"))
              .where(Score.dimension == dimension, Score.day >= start, Score.day <= end)
              .group_by(Score.key).subquery())
    return list(session.scalars(select(Score).join(newest, (Score.key == newest.c.key) & (Score.day == newest.c.day))
                                .where(Score.dimension == dimension).order_by(Score.score, Score.key)))


def alerts(session: Session, status: str | None = "open", limit: int = 50) -> list[Alert]:
    query = select(Alert)
    if status:
        query = query.where(Alert.status == status)
    return list(session.scalars(query.order_by(Alert.last_seen_at.desc(), Alert.id.desc()).limit(limit)))


def open_alert_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Alert).where(Alert.status == "open")) or 0


def job_runs(session: Session) -> list[dict[str, Any]]:
    """Each registered job with its schedule and its newest run."""
    from analysis.jobs import all_jobs
    from analysis.scheduler import last_runs, schedule_text

    runs = last_runs(session)
    out = []
    for job in all_jobs():
        run: JobRun | None = runs.get(job.name)
        duration = None
        if run is not None and run.finished_at is not None:
            duration = round((run.finished_at - run.started_at).total_seconds(), 3)
        out.append({"job": job.name, "schedule": schedule_text(job), "description": job.description,
                    "last_run": _text_time(run.started_at) if run else "never",
                    "duration_s": duration, "rows": run.rows if run else None,
                    "error": (run.error or "") if run else ""})
    return out


def _text_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


# ---------------------------------------------------------------- bounce events (paged)

def _event_filters(query, f: Filters):
    b = BounceEvent
    query = query.where(b.occurred_at >= day_start(f.start), b.occurred_at < day_after(f.end))
    if f.domain:
        query = query.where(matches(b.from_domain, f.domain))
    if f.provider:
        query = query.where(matches(b.provider, f.provider))
    if f.campaign:
        query = query.where(matches(b.campaign, f.campaign))
    return query


def bounce_page(session: Session, f: Filters, page: int, size: int) -> list[dict[str, Any]]:
    """One page of the bounce events of the range, newest first (index on occurred_at)."""
    b = BounceEvent
    query = _event_filters(select(*(getattr(b, c) for c in EVENT_COLUMNS)), f)
    query = query.order_by(b.occurred_at.desc(), b.id.desc()).offset(max(page, 0) * size).limit(size)
    rows = []
    for row in session.execute(query):
        item = dict(zip(EVENT_COLUMNS, row))
        item["occurred_at"] = _text_time(item["occurred_at"])
        item["sending_ip"] = item["sending_ip"] or "unknown"  # not attributed: said, not blank
        item["diagnostic"] = (item["diagnostic"] or "")[:160]
        rows.append(item)
    return rows


def bounce_total(frame: pd.DataFrame) -> int:
    """How many bounce events the rollups counted: every failure has one reason, and the delays
    (action delayed) are counted apart, as `deferred`."""
    return int(prefixed(frame, "reason.").to_numpy().sum()) + int(col(frame, "deferred").sum())


def top_diagnostics(session: Session, f: Filters, limit: int = 15) -> tuple[list[dict[str, Any]], int]:
    """The commonest diagnostic texts among the newest DIAGNOSTIC_SAMPLE bounces of the range."""
    b = BounceEvent
    query = _event_filters(select(b.diagnostic, b.reason), f).where(b.category.notin_(("delivered", "auto_reply")))
    rows = session.execute(query.order_by(b.occurred_at.desc()).limit(DIAGNOSTIC_SAMPLE)).all()
    counts = Counter(((d or "").strip()[:200], r) for d, r in rows)
    return ([{"diagnostic": d or "(none)", "reason": r, "count": n} for (d, r), n in counts.most_common(limit)],
            len(rows))


def raw_message(session: Session, event_id: int) -> dict[str, Any] | None:
    """The message a bounce event came from: its headers and its delivery-status part."""
    event = session.get(BounceEvent, event_id)
    if event is None:
        return None
    msg = session.get(InboundMessage, event.message_id)
    raw = b""
    if msg is not None and msg.raw_zlib is not None:
        raw = zlib.decompress(msg.raw_zlib)
    elif msg is not None and msg.raw_path:
        try:
            with open(msg.raw_path, "rb") as fh:
                raw = fh.read()
        except OSError:
            raw = b""
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32) if raw else None
    headers = "".join(f"{k}: {v}\n" for k, v in parsed.items()) if parsed is not None else ""
    dsn = ""
    if parsed is not None:
        for part in parsed.walk():
            if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
                payload = part.get_payload()
                if isinstance(payload, list):
                    dsn = "\n".join(p.as_string() for p in payload)
                else:
                    dsn = part.get_payload(decode=True).decode("utf-8", "replace") if payload else ""
                break
    return {"event_id": event.id, "message_id": event.message_id, "received_at": _text_time(msg.received_at) if msg else "",
            "kind": msg.kind if msg else "", "headers": headers, "dsn": dsn, "diagnostic": event.diagnostic or "",
            "rule": event.rule or "", "stored": bool(raw)}


# ---------------------------------------------------------------- DMARC

def dispositions(session: Session, f: Filters) -> pd.DataFrame:
    """Messages per day and disposition (none / quarantine / reject) from the aggregate records."""

    r = DmarcRecord
    day = utc_day(r.interval_begin, session.get_bind().dialect.name)
    query = (select(day, r.disposition, func.sum(r.count))
             .where(r.interval_begin >= day_start(f.start), r.interval_begin < day_after(f.end))
             .group_by(day, r.disposition))
    if f.domain:
        query = query.where(matches(r.header_from, f.domain))
    rows = [(d, disposition or "none", n) for d, disposition, n in session.execute(query)]
    return _daily_wide(rows, f.start, f.end)


def dmarc_sources(session: Session, f: Filters, limit: int = 100) -> list[dict[str, Any]]:
    """The sources with mail in the range, most mail first: messages and pass rate of the range,
    their class (decided on all their mail), where they are (country and AS from the offline IP
    database where the reports gave none; base domain and service from parsedmarc's map)."""
    from analysis.dmarc_intel import window_sources

    return [_source_row(r) for r in window_sources(session, f.start, f.end, _dmarc_domain(f), limit)]


def _dmarc_domain(f: Filters) -> str | None:
    return None if not f.domain else key_of(f.domain)


def _source_row(r) -> dict[str, Any]:
    from analysis.source_info import source_info

    about = source_info(r.source_ip, r.reverse_dns)
    return {"domain": label(r.domain), "source_ip": r.source_ip, "class": r.source_class or "—",
            "rule": r.classified_by or "—", "reverse_dns": r.reverse_dns or "",
            "base_domain": r.base_domain or about.base_domain or "", "service": about.service or "",
            "country": r.country or about.country or "", "asn": about.as_text, "messages": r.messages,
            "pass_rate": pct(r.pass_rate, 1), "first_seen": r.first_seen.isoformat(),
            "last_seen": r.last_seen.isoformat()}


def new_dmarc_sources(session: Session, f: Filters, days: int) -> list[dict[str, Any]]:
    """The sources of the range first seen in its last `days` days, with their mail in the range."""
    from analysis.dmarc_intel import window_sources

    since = f.end - timedelta(days=max(days, 1) - 1)
    rows = [r for r in window_sources(session, f.start, f.end, _dmarc_domain(f)) if r.first_seen >= since]
    return [{"domain": label(r.domain), "source_ip": r.source_ip, "class": r.source_class or "—",
             "reverse_dns": r.reverse_dns or "", "messages": r.messages, "failing": r.messages - r.passed,
             "first_seen": r.first_seen.isoformat()}
            for r in sorted(rows, key=lambda r: (r.first_seen, r.domain, r.source_ip))]


def selectors_and_spf(session: Session, f: Filters) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """DKIM selectors (domain, selector) and SPF domains seen in the records of the range."""

    r = DmarcRecord
    dkim_text, spf_text = cast(r.dkim_results, Text), cast(r.spf_results, Text)
    # records repeat a few result shapes: group them in SQL, decode each shape once
    query = (select(func.sum(r.count), dkim_text, spf_text)
             .where(r.interval_begin >= day_start(f.start), r.interval_begin < day_after(f.end)))
    if f.domain:
        query = query.where(matches(r.header_from, f.domain))
    dkim: Counter = Counter()
    spf: Counter = Counter()
    for count, dkim_results, spf_results in session.execute(query.group_by(dkim_text, spf_text).limit(SELECTOR_SAMPLE)):
        for item in json_list(dkim_results):
            if isinstance(item, dict):
                dkim[(item.get("domain") or "", item.get("selector") or "", item.get("result") or "")] += count or 0
        for item in json_list(spf_results):
            if isinstance(item, dict):
                spf[(item.get("domain") or "", item.get("scope") or "mfrom", item.get("result") or "")] += count or 0
    return ([{"domain": d, "selector": s, "result": res, "messages": n} for (d, s, res), n in dkim.most_common(30)],
            [{"domain": d, "scope": sc, "result": res, "messages": n} for (d, sc, res), n in spf.most_common(30)])


def dmarc_domains(session: Session, f: Filters) -> list[str]:
    if f.domain:
        return [key_of(f.domain)]
    return keys(session, "sending_domain", f.start, f.end)


# ---------------------------------------------------------------- TLS

def tls_failures(session: Session, f: Filters) -> list[dict[str, Any]]:
    """Failed sessions per failure type and receiving MX, from the TLS reports of the range."""
    d, p, t = TlsFailureDetail, TlsPolicy, TlsReport
    # one literal (not a bound parameter) so that PostgreSQL sees the GROUP BY expression as the selected one
    mx = func.coalesce(d.receiving_mx_hostname, d.receiving_ip, literal_column("''"))
    query = (select(d.result_type, mx, func.sum(d.failed_sessions))
             .join(p, p.id == d.policy_id).join(t, t.id == p.report_id)
             .where(t.begin >= day_start(f.start), t.begin < day_after(f.end)))
    if f.domain:
        query = query.where(matches(func.lower(p.policy_domain), f.domain))
    query = query.group_by(d.result_type, mx)
    return [{"result_type": rt, "receiving_mx": mx or "(not given)", "failed_sessions": int(n or 0)}
            for rt, mx, n in session.execute(query.order_by(func.sum(d.failed_sessions).desc()).limit(100))]


# ---------------------------------------------------------------- suppressions

def suppression_growth(session: Session, f: Filters) -> pd.DataFrame:
    """Suppressions added per day and reason in the range (from the change log)."""

    c = SuppressionChange
    day = utc_day(c.at, session.get_bind().dialect.name)
    rows = session.execute(select(day, c.reason, func.count()).where(
        c.op == "add", c.at >= day_start(f.start), c.at < day_after(f.end)).group_by(day, c.reason)).all()
    return _daily_wide(rows, f.start, f.end)


def suppression_rows(rows: list[Suppression]) -> list[dict[str, Any]]:
    return [{"id": r.id, "address": r.shown_address, "scope": r.scope, "reason": r.reason, "source": r.source,
             "since": _text_time(r.created_at), "expires": _text_time(r.expires_at),
             "evidence": f"{r.event_table or ''} #{r.event_id}" if r.event_id else "",
             "details": _short(r.details)} for r in rows]


def _short(details: dict[str, Any] | None) -> str:
    if not details:
        return ""
    text = ", ".join(f"{k}={v}" for k, v in details.items())
    return text[:200]


def find_suppressions(session: Session, text: str, now: datetime, salt: str = "", limit: int = 50) -> list[Suppression]:
    """What is in force for an exact address, else the active rows whose address contains `text`."""
    from store.addresses import AddressError
    from store.suppressions import active_suppressions, suppressions_of

    text = (text or "").strip()
    if not text:
        return []
    if "@" in text:
        try:
            found = suppressions_of(session, text, now=now, salt=salt)
        except (AddressError, ValueError):
            found = []
        if found:
            return found
    return list(session.scalars(active_suppressions(session, now, search=text).limit(limit)))


def active_count(session: Session, now: datetime) -> int:
    from store.suppressions import in_force

    return session.scalar(select(func.count()).select_from(Suppression).where(*in_force(now))) or 0


# ---------------------------------------------------------------- domains

@dataclass(frozen=True)
class Checklist:
    domain: str
    authenticated: bool | None
    aligned: bool | None
    one_click: bool | None
    complaint_ok: bool | None
    aligned_rate: float | None
    complaint_rate: float | None


def posture(session: Session) -> dict[str, list[PostureCheck]]:
    """The current result of every check, by subject (domain or IP)."""
    from analysis.posture import current

    out: dict[str, list[PostureCheck]] = {}
    for row in current(session):
        out.setdefault(row.subject, []).append(row)
    return out


def checklist(session: Session, f: Filters, domain: str, checks: list[PostureCheck], one_click: bool,
              complaint_line: float) -> Checklist:
    """The providers' bulk-sender requirements for one sending domain."""
    frame = daily(session, Filters(f.start, f.end, domain=domain or UNKNOWN))
    k = kpis(frame)
    by_check = {c.check: c.status for c in checks}
    known = {"ok": True, "unknown": None}  # unknown: the DNS did not answer; anything else: not ok
    dkim = [known.get(status, False) for name, status in by_check.items() if name.startswith("dkim:")]
    parts = (known.get(by_check.get("spf"), False), True if True in dkim else None if None in dkim else False,
             known.get(by_check.get("dmarc"), False))
    authenticated = (False if False in parts else None if None in parts else True) if by_check else None
    aligned_rate, complaint_rate = k["dmarc_aligned_rate"], k["complaint_rate"]
    return Checklist(domain, authenticated, None if aligned_rate is None else aligned_rate >= 0.98, one_click,
                     None if complaint_rate is None else complaint_rate < complaint_line, aligned_rate, complaint_rate)


# ---------------------------------------------------------------- compare

ROLLUP_COMPARE = ("sending_ip", "campaign", "sending_domain", "provider")


def compare_groups(session: Session, by: str, a: tuple[str, ...], b: tuple[str, ...], f: Filters) -> dict[str, Any]:
    """The A/B comparison of two groups of sends over the range.

    Sending IPs, campaigns, sending domains and providers are rollup dimensions: their counts
    come from the rollups. Pools, tags and DKIM selectors are only in the send log: those go
    through analysis.compare, which reads the send log from the range's start.
    """
    from analysis.compare import GroupCounts, compare, rate_comparisons

    if by not in ROLLUP_COMPARE:
        return compare(session, by, a, b, day_start(f.start))
    totals = by_key(session, by, f.start, f.end, ("sent", "delivered", "bounced", *REPUTATION_BLOCKS, "complaints"))

    def group(label: str, values: tuple[str, ...]) -> GroupCounts:
        keys_ = [key_of(v) for v in values]
        rows = totals.loc[[k for k in keys_ if k in totals.index]] if len(totals) else totals
        get = (lambda m: int(rows[m].sum()) if m in rows.columns else 0)
        return GroupCounts.of(label, values, sends=get("sent"), bounced=get("bounced"),
                              blocked=sum(get(m) for m in REPUTATION_BLOCKS),
                              complaints=get("complaints"))

    ga, gb = group("A", a), group("B", b)
    return {"by": by, "since": f.start.isoformat(), "a": ga, "b": gb, "rates": rate_comparisons(ga, gb)}
