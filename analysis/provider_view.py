"""The providers' figures beside postwatch's own, and the signals the alerts and scores read.

Three views, each row saying where each number comes from:
- `spam_rates`: per domain and day, Gmail's user-reported spam rate (Postmaster Tools) next
  to postwatch's complaint rate of that sending domain (complaint reports / the sends to
  providers that send them, from the rollups) and of all mail to Gmail (provider `google`);
- `snds_rows`: per IP and day, SNDS's filter colour, complaint rate and trap hits next to
  postwatch's block rate of that sending IP (refusals of the sender / sent, from the rollups);
- `compliance_rows`: per domain and requirement, Google's compliance state next to the
  results of postwatch's own authentication checks (analysis/posture.py) that test the same.
"""
from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from analysis.evidence import complaint_base
from analysis.rollups import BLOCK_METRICS, as_date
from ingest.feeds.postmaster import SPAM_RATE
from ingest.feeds.snds import COLOURS
from store.provider_stats import PostmasterCompliance, PostmasterStat, SndsActivity, SndsIpStatus
from store.rollups import Rollup

COLOUR_RANK = {colour: rank for rank, colour in enumerate(COLOURS)}  # GREEN < YELLOW < RED
GOOGLE = "google"
SOURCES = {
    "gmail_spam_rate": "Google Postmaster Tools: user-reported spam rate of the domain's mail to Gmail",
    "our_complaint_rate": "postwatch rollups: complaint reports / sends to providers that send them, "
                          "this sending domain",
    "our_google_complaint_rate": "postwatch rollups: complaint reports / sends, all mail to provider google",
    "snds_colour": "Microsoft SNDS data export: filter result of the IP's activity period",
    "our_block_rate": "postwatch rollups: refusals of the sender (reputation and policy bounces) / sent, "
                      "this sending IP",
    "google_state": "Google Postmaster Tools: compliance status (getComplianceStatus)",
    "our_checks": "postwatch's DNS checks of the sending domain and IPs (analysis/posture.py)",
}
# Which of postwatch's own checks test what a Postmaster Tools requirement asks; a check name
# ending in ':' stands for every check of that family (every DKIM selector, every PTR).
REQUIREMENT_CHECKS: dict[str, tuple[str, ...]] = {
    "spf": ("spf",), "dkim": ("dkim:",), "spf_and_dkim": ("spf", "dkim:"), "dmarc_policy": ("dmarc",),
    "dmarc_alignment": ("dmarc",), "dns_records": ("ptr",), "encryption": (), "message_formatting": (),
    "user_reported_spam_rate": (), "one_click_unsubscribe": (), "honor_unsubscribe": (),
}
STATUS_RANK = {"ok": 0, "warning": 1, "unknown": 1, "missing": 2, "error": 2}


def _rate(count: float, total: float) -> float | None:
    return count / total if total else None


def _daily(session: Session, dimension: str, keys: set[str] | None, start: date, end: date,
           metrics: tuple[str, ...]) -> dict[tuple[str, date], dict[str, int]]:
    query = (select(Rollup.key, Rollup.day, Rollup.metric, Rollup.value)
             .where(Rollup.dimension == dimension, Rollup.day >= start, Rollup.day <= end,
                    Rollup.metric.in_(metrics)))
    if keys is not None:
        query = query.where(Rollup.key.in_(sorted(keys)))
    out: dict[tuple[str, date], dict[str, int]] = defaultdict(dict)
    for key, day, metric, value in session.execute(query):
        out[(key, as_date(day))][metric] = int(value)
    return out


def _complaints(m: dict[str, int]) -> tuple[float | None, int, int, str]:
    base, basis = complaint_base(m.get("sent", 0), m.get("sent.fbl", 0))
    return _rate(m.get("complaints", 0), base), m.get("complaints", 0), int(base), basis


def _under(name: str, domain: str) -> bool:
    """Whether `name` is `domain` or one of its subdomains: what a Postmaster Tools domain speaks for."""
    return name == domain or name.endswith("." + domain)


# ---------------------------------------------------------------- Gmail's spam rate

def spam_rates(session: Session, start: date, end: date, domain: str | None = None) -> list[dict[str, Any]]:
    """Every day of [start, end] for every domain with Postmaster Tools figures in it: both
    rates (None where a side has nothing for the day), with the counts behind ours."""
    query = select(PostmasterStat.domain, PostmasterStat.day, PostmasterStat.metric, PostmasterStat.value).where(
        PostmasterStat.day >= start, PostmasterStat.day <= end)
    if domain:
        query = query.where(PostmasterStat.domain == domain)
    google: dict[tuple[str, date], dict[str, float]] = defaultdict(dict)
    for d, day, metric, value in session.execute(query):
        google[(d, as_date(day))][metric] = value
    domains = sorted({d for d, _day in google})
    if not domains:
        return []
    ours = _daily(session, "sending_domain", None, start, end, ("sent", "sent.fbl", "complaints"))
    keys_on: dict[date, set[str]] = defaultdict(set)
    for key, day in ours:
        keys_on[day].add(key)
    at_google = _daily(session, "provider", {GOOGLE}, start, end, ("sent", "complaints"))
    rows = []
    for d in domains:
        for i in range((end - start).days + 1):
            day = start + timedelta(days=i)
            g = google.get((d, day), {})
            mine: dict[str, int] = defaultdict(int)
            for key in (k for k in keys_on[day] if _under(k, d)):
                for metric, value in ours[(key, day)].items():
                    mine[metric] += value
            rate, complaints, base, basis = _complaints(mine)
            gm = at_google.get((GOOGLE, day), {})
            if not g and not mine:
                continue
            rows.append({
                "day": day, "domain": d, "gmail_spam_rate": g.get(SPAM_RATE),
                "gmail_spf": g.get("auth_success_rate.spf"), "gmail_dkim": g.get("auth_success_rate.dkim"),
                "gmail_dmarc": g.get("auth_success_rate.dmarc"), "gmail_tls_inbound": g.get("tls_encryption_rate.inbound"),
                "gmail_delivery_errors": g.get("delivery_error_rate"),
                "our_complaint_rate": rate, "our_complaints": complaints, "our_base": base, "our_basis": basis,
                "our_sent": mine.get("sent", 0),
                "our_google_complaint_rate": _rate(gm.get("complaints", 0), gm.get("sent", 0)),
                "our_google_sent": gm.get("sent", 0), "our_google_complaints": gm.get("complaints", 0)})
    return rows


def gmail_spam_rate_on(session: Session, day: date) -> dict[str, float]:
    """Postmaster Tools' spam rate of each domain on `day`."""
    return {d: v for d, v in session.execute(select(PostmasterStat.domain, PostmasterStat.value).where(
        PostmasterStat.day == day, PostmasterStat.metric == SPAM_RATE))}


# ---------------------------------------------------------------- SNDS

def snds_on(session: Session, day: date) -> dict[str, SndsActivity]:
    """Each IP's activity period starting on `day` (the worst colour when several)."""
    out: dict[str, SndsActivity] = {}
    for row in session.scalars(select(SndsActivity).where(SndsActivity.day == day)):
        have = out.get(row.ip)
        if have is None or COLOUR_RANK[row.filter_result] > COLOUR_RANK[have.filter_result]:
            out[row.ip] = row
    return out


@dataclass
class StatusList:
    """The IP status list as last read on or before a day."""

    day: date | None = None
    ranges: list[SndsIpStatus] = field(default_factory=list)

    def blocked(self, ip: str) -> SndsIpStatus | None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for r in self.ranges:
            if r.blocked and address.version == ipaddress.ip_address(r.first_ip).version and \
                    ipaddress.ip_address(r.first_ip) <= address <= ipaddress.ip_address(r.last_ip):
                return r
        return None


def status_list(session: Session, day: date) -> StatusList:
    last = session.scalar(select(func.max(SndsIpStatus.day)).where(SndsIpStatus.day <= day))
    if last is None:
        return StatusList()
    return StatusList(as_date(last), list(session.scalars(select(SndsIpStatus).where(SndsIpStatus.day == last)
                                                          .order_by(SndsIpStatus.first_ip))))


def range_key(r: SndsIpStatus) -> str:
    return r.first_ip if r.first_ip == r.last_ip else f"{r.first_ip}-{r.last_ip}"


def snds_rows(session: Session, start: date, end: date) -> list[dict[str, Any]]:
    """Every IP and day of SNDS's data export in [start, end], with postwatch's block rate of
    that sending IP beside it, and whether the IP status list (as read by then) blocks it."""
    activity = list(session.scalars(select(SndsActivity).where(SndsActivity.day >= start, SndsActivity.day <= end)
                                    .order_by(SndsActivity.day, SndsActivity.ip, SndsActivity.activity_start)))
    if not activity:
        return []
    ours = _daily(session, "sending_ip", {a.ip for a in activity}, start, end, ("sent", *BLOCK_METRICS))
    lists: dict[date, StatusList] = {}
    rows = []
    for a in activity:
        day = as_date(a.day)
        if day not in lists:
            lists[day] = status_list(session, day)
        blocked = lists[day].blocked(a.ip)
        m = ours.get((a.ip, day), {})
        blocks = sum(m.get(metric, 0) for metric in BLOCK_METRICS)
        rows.append({"day": day, "ip": a.ip, "snds_colour": a.filter_result,
                     "snds_complaint_rate": a.complaint_rate, "snds_complaint_rate_text": a.complaint_rate_text,
                     "snds_trap_hits": a.trap_hits, "snds_recipients": a.recipients,
                     "snds_period": f"{a.activity_start:%Y-%m-%d %H:%M} to {a.activity_end:%Y-%m-%d %H:%M} UTC",
                     "snds_blocked": blocked is not None, "snds_block_details": blocked.details if blocked else None,
                     "our_sent": m.get("sent", 0), "our_blocks": blocks,
                     "our_block_rate": _rate(blocks, m.get("sent", 0))})
    return rows


# ---------------------------------------------------------------- compliance

def compliance_on(session: Session, day: date) -> dict[tuple[str, str], list[PostmasterCompliance]]:
    """Each (domain, requirement)'s states read on or before `day`, newest first."""
    out: dict[tuple[str, str], list[PostmasterCompliance]] = defaultdict(list)
    for row in session.scalars(select(PostmasterCompliance).where(PostmasterCompliance.day <= day)
                               .order_by(PostmasterCompliance.day.desc())):
        out[(row.domain, row.requirement)].append(row)
    return out


def changed_from(states: list[PostmasterCompliance]) -> PostmasterCompliance | None:
    """Of a requirement's states, newest first (`compliance_on`): the last one read before the
    latest state that differs from it; None when the state never changed."""
    return next((s for s in states[1:] if s.state != states[0].state), None)


def _our_checks(posture: list[Any], domain: str, requirement: str) -> list[dict[str, str]]:
    found = []
    for wanted in REQUIREMENT_CHECKS.get(requirement, ()):
        for p in posture:
            family = p.check == wanted or (wanted.endswith(":") and p.check.startswith(wanted))
            about = p.check == "ptr" or _under(p.subject, domain)
            if family and about:
                found.append({"subject": p.subject, "check": p.check, "status": p.status, "summary": p.summary})
    return found


def compliance_rows(session: Session, day: date) -> list[dict[str, Any]]:
    """Google's latest state of each requirement of each domain (as read by `day`), the state
    before it, and postwatch's own checks of the same thing with the worst of their results."""
    from analysis.posture import current

    posture = current(session)
    rows = []
    for (domain, requirement), states in sorted(compliance_on(session, day).items()):
        latest = states[0]
        before = changed_from(states)
        ours = _our_checks(posture, domain, requirement)
        worst = max((o["status"] for o in ours), key=lambda s: STATUS_RANK.get(s, 1), default=None)
        rows.append({"domain": domain, "requirement": requirement, "google_state": latest.state,
                     "google_reason": latest.reason, "read_on": as_date(latest.day),
                     "previous_state": before.state if before else None,
                     "changed_on": as_date(states[states.index(before) - 1].day) if before else None,
                     "our_status": worst if ours else None, "our_checks": ours,
                     "note": None if REQUIREMENT_CHECKS.get(requirement) else "postwatch has no check of its own "
                                                                              "for this requirement"})
    return rows


# ---------------------------------------------------------------- signals for the scores

@dataclass
class Signals:
    """What the providers said about one day, for the reputation score's explanation."""

    gmail: dict[str, float]
    snds: dict[str, SndsActivity]
    statuses: StatusList

    def for_entity(self, dimension: str, key: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if dimension in ("sending_domain", "all"):
            rates = {d: r for d, r in self.gmail.items()
                     if dimension == "all" or _under(key, d)}
            if rates:
                d = max(rates, key=lambda x: rates[x])
                out["gmail_spam_rate"] = {"rate": rates[d], "domain": d}
        if dimension in ("sending_ip", "all"):
            ips = {ip: a for ip, a in self.snds.items() if dimension == "all" or ip == key}
            if ips:
                ip = max(ips, key=lambda x: COLOUR_RANK[ips[x].filter_result])
                out["snds_colour"] = {"colour": ips[ip].filter_result, "ip": ip,
                                      "complaint_rate": ips[ip].complaint_rate_text, "trap_hits": ips[ip].trap_hits}
            blocked = ([r for r in self.statuses.ranges if r.blocked] if dimension == "all"
                       else [b for b in [self.statuses.blocked(key)] if b is not None])
            if blocked:
                out["snds_blocked"] = {"ranges": [range_key(r) for r in blocked],
                                       "details": blocked[0].details, "read_on": self.statuses.day.isoformat()
                                       if self.statuses.day else None}
        return out


def signals(session: Session, day: date) -> Signals:
    return Signals(gmail_spam_rate_on(session, day), snds_on(session, day), status_list(session, day))
