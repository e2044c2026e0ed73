"""DMARC intelligence: who sends as each From domain, which sources are new, and what a
stricter policy would cost.

A source (one IP sending as one domain) is classified, first rule that applies:

1. `authorised` — its IP is in [dmarc] authorised_ips or [domains] sending_ips (IPs or CIDRs),
   or its reverse DNS ends in one of [dmarc] esp_domains;
2. `forwarder` — the receiver applied a forwarding override (parsedmarc's policy override
   reasons `forwarded`, `trusted_forwarder`, `mailing_list`);
3. `authorised` — it passes SPF aligned (the domain's own SPF record names it);
4. `forwarder` — its reverse DNS ends in a known forwarder's base domain (forwarders.toml
   and [dmarc] forwarders);
5. `authorised` — it passes DKIM aligned (it holds the domain's key);
6. `unknown` — anything else: misconfigured or spoofing.
"""
from __future__ import annotations

import ipaddress
import json
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, Text, and_, cast, func, select
from sqlalchemy.orm import Session

from analysis.config import DmarcConfig  # noqa: F401  (re-exported)
from analysis.jobs import JobContext, job
from store.columns import as_date, day_start, json_list, utc_day
from store.dmarc_sources import DmarcSource
from store.models import DmarcAggregateReport, DmarcRecord
from store.rollups import Rollup, RollupWatermark

FORWARDERS_FILE = Path(__file__).with_name("forwarders.toml")
FORWARDING_OVERRIDES = ("forwarded", "trusted_forwarder", "mailing_list")
WATERMARK = "dmarc_sources"




@lru_cache(maxsize=1)
def shipped_forwarders() -> tuple[str, ...]:
    with open(FORWARDERS_FILE, "rb") as fh:
        return tuple(d.lower() for d in tomllib.load(fh)["base_domains"])


def _ends_in(host: str | None, suffixes: frozenset[str]) -> bool:
    host = (host or "").strip().lower().rstrip(".")
    while host:
        if host in suffixes:
            return True
        host = host.partition(".")[2]
    return False


class Classifier:
    """`classifier(ip, base_domain, reverse_dns, spf_aligned, dkim_aligned, override_reasons)`
    -> (class, rule)."""

    def __init__(self, config: DmarcConfig | None = None, sending_ips: tuple[str, ...] = ()) -> None:
        config = config or DmarcConfig()
        self.networks = []
        for entry in (*config.authorised_ips, *sending_ips):
            try:
                self.networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(f"dmarc.authorised_ips: {entry!r} is not an IP address or CIDR") from None
        self.esps = frozenset(d.lower().strip(".") for d in config.esp_domains)
        self.forwarders = frozenset((*shipped_forwarders(), *(d.lower().strip(".") for d in config.forwarders)))
        self._ip_cache: dict[str, bool] = {}

    def _configured_ip(self, ip: str | None) -> bool:
        if not ip or not self.networks:
            return False
        found = self._ip_cache.get(ip)
        if found is None:
            try:
                addr = ipaddress.ip_address(ip)
                found = any(addr in net for net in self.networks)
            except ValueError:
                found = False
            self._ip_cache[ip] = found
        return found

    def __call__(self, ip: str | None, base_domain: str | None, reverse_dns: str | None, spf_aligned: bool,
                 dkim_aligned: bool, override_reasons: list[Any] | None = None) -> tuple[str, str]:
        if self._configured_ip(ip):
            return "authorised", "configured_ip"
        if self.esps and (_ends_in(base_domain, self.esps) or _ends_in(reverse_dns, self.esps)):
            return "authorised", "esp_domain"
        if any(_override_type(r) in FORWARDING_OVERRIDES for r in override_reasons or ()):
            return "forwarder", "override_reason"
        if spf_aligned:
            return "authorised", "spf_aligned"
        if _ends_in(base_domain, self.forwarders) or _ends_in(reverse_dns, self.forwarders):
            return "forwarder", "known_forwarder"
        if dkim_aligned:
            return "authorised", "dkim_aligned"
        return "unknown", "no_match"


def _override_type(reason: Any) -> str:
    if isinstance(reason, dict):
        return str(reason.get("type") or "").lower()
    return str(reason or "").lower()


def classifier_from(settings: Any) -> Classifier:
    domains = getattr(settings, "domains", None)
    return Classifier(getattr(settings, "dmarc", None), tuple(getattr(domains, "sending_ips", ()) or ()))


def update_sources(session: Session, *, now: datetime, classifier: Classifier | None = None) -> int:
    """Fold the DMARC records above the watermark into `dmarc_sources`; re-classify what changed."""
    from store.watermark import committed_max_id

    classifier = classifier or Classifier()
    dialect = session.get_bind().dialect.name
    mark = session.get(RollupWatermark, WATERMARK)
    lo = mark.last_id if mark else 0
    hi = committed_max_id(session, DmarcRecord.id)
    if hi is None or hi <= lo:
        return 0
    r, a = DmarcRecord, DmarcAggregateReport
    day = utc_day(r.interval_begin, dialect)
    domain = func.lower(func.coalesce(r.header_from, a.domain))
    overrides = cast(r.policy_override_reasons, Text)
    query = (select(domain, r.source_ip, overrides, func.max(r.source_base_domain), func.max(r.source_reverse_dns),
                    func.min(day), func.max(day), func.sum(r.count),
                    func.sum(r.count * r.dmarc_pass.cast(Integer())),
                    func.sum(r.count * r.dkim_aligned.cast(Integer())),
                    func.sum(r.count * r.spf_aligned.cast(Integer())))
             .join(a, a.id == r.report_id).where(and_(r.id > lo, r.id <= hi))
             .group_by(domain, r.source_ip, overrides))
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for dom, ip, over, base, rdns, first, last, n, passed, dkim, spf in session.execute(query):
        t = totals.setdefault((dom, ip), {"base": None, "rdns": None, "first": None, "last": None, "messages": 0,
                                          "passed": 0, "aligned": 0, "spf": 0, "forwarded": 0})
        t["base"], t["rdns"] = t["base"] or base, t["rdns"] or rdns
        first, last = as_date(first), as_date(last)
        t["first"] = min(t["first"] or first, first)
        t["last"] = max(t["last"] or last, last)
        t["messages"] += n or 0
        t["passed"] += passed or 0
        t["aligned"] += dkim or 0
        t["spf"] += spf or 0
        if any(_override_type(x) in FORWARDING_OVERRIDES for x in json_list(over)):
            t["forwarded"] += n or 0
    existing: dict[tuple[str, str], DmarcSource] = {}
    pairs = list(totals)
    for i in range(0, len(pairs), 300):
        chunk = pairs[i:i + 300]
        for row in session.scalars(select(DmarcSource).where(
                DmarcSource.domain.in_({d for d, _ in chunk}), DmarcSource.source_ip.in_({ip for _, ip in chunk}))):
            existing[(row.domain, row.source_ip)] = row
    for (dom, ip), t in totals.items():
        row = existing.get((dom, ip))
        if row is None:
            row = DmarcSource(domain=dom, source_ip=ip, base_domain=t["base"], reverse_dns=t["rdns"],
                              first_seen=t["first"], last_seen=t["last"], messages=0, passed=0, aligned=0,
                              spf_aligned=0, forwarded=0, source_class="unknown", classified_by="", updated_at=now)
            session.add(row)
        else:
            row.first_seen, row.last_seen = min(row.first_seen, t["first"]), max(row.last_seen, t["last"])
            row.base_domain, row.reverse_dns = row.base_domain or t["base"], row.reverse_dns or t["rdns"]
        row.messages += t["messages"]
        row.passed += t["passed"]
        row.aligned += t["aligned"]
        row.spf_aligned += t["spf"]
        row.forwarded += t["forwarded"]
        row.source_class, row.classified_by = classify_source(row, classifier)
        row.updated_at = now
    if mark is None:
        session.add(RollupWatermark(source=WATERMARK, last_id=hi, updated_at=now))
    else:
        mark.last_id, mark.updated_at = hi, now
    session.flush()
    return len(totals)


def classify_source(row: DmarcSource, classifier: Classifier) -> tuple[str, str]:
    """A source's class from its totals: each test holds when it holds for at least half its mail."""
    half = row.messages / 2 if row.messages else 0.5
    forwarded = ["forwarded"] if row.forwarded >= half and row.forwarded else []
    return classifier(row.source_ip, row.base_domain, row.reverse_dns, row.spf_aligned >= half and row.spf_aligned > 0,
                      row.aligned >= half and row.aligned > 0, forwarded)


def sources(session: Session, domain: str, since: date | None = None) -> list[DmarcSource]:
    """The sources of `domain` (seen on or after `since`), most messages first."""
    query = select(DmarcSource).where(DmarcSource.domain == domain.lower().strip("."))
    if since is not None:
        query = query.where(DmarcSource.last_seen >= since)
    return list(session.scalars(query.order_by(DmarcSource.messages.desc(), DmarcSource.source_ip)))


@dataclass(frozen=True)
class WindowSource:
    """One source of one From domain over a window of days: its messages in the window, and its
    class (decided on all its mail, by `update_sources`)."""

    domain: str
    source_ip: str
    messages: int  # in the window
    passed: int  # DMARC pass, in the window
    aligned: int  # DKIM aligned, in the window
    spf_aligned: int  # SPF aligned, in the window
    first_seen: date  # the first day of any report naming it (in the window if not yet folded)
    last_seen: date  # the last day in the window with mail from it
    reverse_dns: str | None
    base_domain: str | None
    country: str | None  # as the reports' enrichment gave it at ingest
    source_class: str  # "" while `update_sources` has not folded it yet
    classified_by: str

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.messages if self.messages else None


def window_sources(session: Session, start: date, end: date, domain: str | None = None,
                   limit: int | None = None) -> list[WindowSource]:
    """The sources with mail in the reports of the days [start, end] (UTC, the rollups' days),
    most messages first: counted from `dmarc_records` for the window, classed from `dmarc_sources`."""

    r, a = DmarcRecord, DmarcAggregateReport
    day = utc_day(r.interval_begin, session.get_bind().dialect.name)
    dom = func.lower(func.coalesce(r.header_from, a.domain))
    messages = func.sum(r.count)
    query = (select(dom, r.source_ip, messages, func.sum(r.count * r.dmarc_pass.cast(Integer())),
                    func.sum(r.count * r.dkim_aligned.cast(Integer())),
                    func.sum(r.count * r.spf_aligned.cast(Integer())), func.min(day), func.max(day),
                    func.max(r.source_reverse_dns), func.max(r.source_base_domain), func.max(r.source_country))
             .join(a, a.id == r.report_id)
             .where(r.interval_begin >= day_start(start), r.interval_begin < day_start(end + timedelta(days=1)))
             .group_by(dom, r.source_ip).order_by(messages.desc(), r.source_ip))
    if domain is not None:
        query = query.where(dom == domain.lower().strip("."))
    if limit:
        query = query.limit(limit)
    rows = session.execute(query).all()
    known: dict[tuple[str, str], DmarcSource] = {}
    for i in range(0, len(rows), 300):
        chunk = rows[i:i + 300]
        for src in session.scalars(select(DmarcSource).where(
                DmarcSource.domain.in_({row[0] for row in chunk}),
                DmarcSource.source_ip.in_({row[1] for row in chunk}))):
            known[(src.domain, src.source_ip)] = src
    out = []
    for dom_, ip, n, passed, dkim, spf, first, last, rdns, base, country in rows:
        src = known.get((dom_, ip))
        out.append(WindowSource(
            dom_, ip, int(n or 0), int(passed or 0), int(dkim or 0), int(spf or 0),
            src.first_seen if src else as_date(first), as_date(last), rdns or (src.reverse_dns if src else None),
            base or (src.base_domain if src else None), country, src.source_class if src else "",
            src.classified_by if src else ""))
    return out


def new_sources(session: Session, since: date, domain: str | None = None,
                failing_only: bool = False) -> list[DmarcSource]:
    """Sources first seen on or after `since` (optionally only those with DMARC failures)."""
    query = select(DmarcSource).where(DmarcSource.first_seen >= since)
    if domain:
        query = query.where(DmarcSource.domain == domain.lower().strip("."))
    if failing_only:
        query = query.where(DmarcSource.passed < DmarcSource.messages)
    return list(session.scalars(query.order_by(DmarcSource.first_seen, DmarcSource.domain, DmarcSource.source_ip)))


@dataclass(frozen=True)
class Impact:
    """What p=quarantine or p=reject would do to one day of a domain's legitimate mail."""

    domain: str
    day: date | None
    legitimate: int  # messages from authorised and forwarder sources
    would_fail: int  # of those, failing DMARC: quarantined (to spam) or rejected under a strict policy
    by_class: dict[str, dict[str, int]]  # class -> {"messages", "failing"}
    current_policy: str | None

    @property
    def share_lost(self) -> float:
        return self.would_fail / self.legitimate if self.legitimate else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "day": self.day.isoformat() if self.day else None,
                "legitimate": self.legitimate, "would_fail": self.would_fail,
                "share_lost": round(self.share_lost, 6), "by_class": self.by_class,
                "current_policy": self.current_policy}


def impact(session: Session, domain: str, day: date | None = None, until: date | None = None) -> Impact:
    """The share of `domain`'s legitimate volume that a p=quarantine/reject policy would lose on
    `day` (default: the latest day with reports, on or before `until` if given), from the rollups."""
    domain = domain.lower().strip(".")
    base = select(Rollup).where(Rollup.dimension == "sending_domain", Rollup.key == domain)
    if day is None:
        latest = select(func.max(Rollup.day)).where(
            Rollup.dimension == "sending_domain", Rollup.key == domain, Rollup.metric == "dmarc.messages")
        day = session.scalar(latest.where(Rollup.day <= until) if until is not None else latest)
    values: dict[str, int] = {}
    if day is not None:
        values = {r.metric: r.value for r in session.scalars(base.where(Rollup.day == day,
                                                                         Rollup.metric.like("dmarc.%")))}
    by_class = {c: {"messages": values.get(f"dmarc.source.{c}", 0), "failing": values.get(f"dmarc.fail.{c}", 0)}
                for c in ("authorised", "forwarder", "unknown")}
    legit = by_class["authorised"]["messages"] + by_class["forwarder"]["messages"]
    failing = by_class["authorised"]["failing"] + by_class["forwarder"]["failing"]
    policy = session.execute(select(DmarcAggregateReport.policy).where(DmarcAggregateReport.domain == domain)
                             .order_by(DmarcAggregateReport.begin.desc()).limit(1)).scalar()
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            policy = None
    current = (policy or {}).get("p") if isinstance(policy, dict) else None
    return Impact(domain, day, legit, failing, by_class, current)


@job("dmarc_sources", every=timedelta(hours=1), order=15)
def dmarc_sources_job(ctx: JobContext) -> int:
    """Fold new DMARC aggregate records into the per-domain source list and classify the sources."""
    with ctx.sessions() as session, session.begin():
        return update_sources(session, now=ctx.clock(), classifier=classifier_from(ctx.settings))
