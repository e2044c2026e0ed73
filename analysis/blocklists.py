"""Blocklist checks: the sending IPs and domains against DNSBL and URIBL zones.

A DNSBL is asked by name: `4.3.2.1.zen.spamhaus.org` for 1.2.3.4 (IPv6: the 32 nibbles,
reversed), `example.com.dbl.spamhaus.org` for a domain. An A answer in 127.0.0.0/8 is a
listing (its TXT says why); NXDOMAIN is clean. 127.255.255.x is the zone refusing the query
(Spamhaus says so to public resolvers) and, like a timeout, is recorded as an error — never
as a listing, and never as clean.
"""
from __future__ import annotations

import ipaddress
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import dns.exception
import dns.resolver
from sqlalchemy import select
from sqlalchemy.orm import Session

from analysis.jobs import JobContext, job
from store.alerts import Alert, raise_alert, resolve_alert
from store.checks import BlocklistCheck

log = logging.getLogger(__name__)

DIMENSIONS = ("sending_ip", "sending_domain")


def listed(session: Session, day: date) -> dict[tuple[str, str], list[str]]:
    """(dimension, key) -> the zones that listed it at any check of `day` (sorted).

    dimension is 'sending_ip' or 'sending_domain'; targets listed nowhere are absent.
    """
    rows = session.execute(select(BlocklistCheck.dimension, BlocklistCheck.key, BlocklistCheck.zone)
                           .where(BlocklistCheck.day == day, BlocklistCheck.listed.is_(True))
                           .order_by(BlocklistCheck.dimension, BlocklistCheck.key, BlocklistCheck.zone))
    out: dict[tuple[str, str], list[str]] = {}
    for dimension, key, zone in rows:
        out.setdefault((dimension, key), []).append(zone)
    return out


@dataclass(frozen=True)
class Verdict:
    status: str  # listed | clean | error
    answer: str | None = None
    error: str | None = None


def query_name(dimension: str, key: str, zone: str) -> str:
    """The DNS name to ask `zone` about an IP (reversed octets / nibbles) or a domain."""
    zone = zone.strip(".")
    if dimension == "sending_ip":
        addr = ipaddress.ip_address(key)
        # reverse_pointer is "4.3.2.1.in-addr.arpa" / "b.a.9.8...ip6.arpa": the reversed form we need
        return addr.reverse_pointer.rsplit(".", 2)[0] + "." + zone
    return key.strip(".").lower() + "." + zone


def check(resolver: dns.resolver.Resolver, dimension: str, key: str, zone: str) -> Verdict:
    name = query_name(dimension, key, zone)
    try:
        answer = resolver.resolve(name, "A")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return Verdict("clean")
    except dns.exception.Timeout:
        return Verdict("error", error=f"timeout asking {zone}")
    except dns.resolver.NoNameservers as exc:
        return Verdict("error", error=f"no server answered for {zone} ({_first_line(exc)})")
    except dns.exception.DNSException as exc:
        return Verdict("error", error=f"{type(exc).__name__} asking {zone}: {_first_line(exc)}")
    addrs = sorted(r.address for r in answer)
    refused = [a for a in addrs if a.startswith("127.255.255.")]
    if refused:
        return Verdict("error", answer=", ".join(addrs),
                       error=f"{zone} refused the query ({refused[0]}): use a resolver the zone accepts")
    listing = [a for a in addrs if ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8")]
    if not listing:  # e.g. a resolver that answers every name with an advertising page
        return Verdict("error", answer=", ".join(addrs), error=f"{zone} answered outside 127.0.0.0/8")
    text = _txt(resolver, name)
    return Verdict("listed", answer=", ".join(listing) + (f" {text}" if text else ""))


def _txt(resolver: dns.resolver.Resolver, name: str) -> str:
    try:
        answer = resolver.resolve(name, "TXT")
    except dns.exception.DNSException:
        return ""
    return " ".join(b"".join(r.strings).decode("utf-8", "replace") for r in answer)[:500]


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def targets(session: Session, domains, blocklists, today: date) -> list[tuple[str, str]]:
    """The (dimension, key) pairs to check: configured ones, and those seen in the rollups."""
    found: set[tuple[str, str]] = set()
    for ip in domains.sending_ips:
        found.add(("sending_ip", ip.strip()))
    for domain in domains.sending_domains:
        found.add(("sending_domain", domain.strip().lower().rstrip(".")))
    if blocklists.from_rollups:
        found.update(_rollup_keys(session, today - timedelta(days=blocklists.lookback_days), today))
    good = []
    for dimension, key in sorted(found):
        if not key:
            continue
        if dimension == "sending_ip":
            try:
                key = str(ipaddress.ip_address(key))
            except ValueError:
                log.warning("not an IP address, not checked against DNSBLs: %r", key)
                continue
        good.append((dimension, key))
    return sorted(set(good))


def _rollup_keys(session: Session, start: date, end: date) -> set[tuple[str, str]]:
    try:
        from store.rollups import Rollup  # part of the rollups work; absent before it lands
    except ImportError:
        return set()
    from sqlalchemy import inspect

    if not inspect(session.connection()).has_table(Rollup.__tablename__):
        return set()
    rows = session.execute(select(Rollup.dimension, Rollup.key).distinct()
                           .where(Rollup.dimension.in_(DIMENSIONS), Rollup.day >= start, Rollup.day <= end,
                                  Rollup.key != ""))
    return {(d, k) for d, k in rows}


def run_checks(session: Session, resolver: dns.resolver.Resolver, pairs: list[tuple[str, str]],
               ip_zones: tuple[str, ...], domain_zones: tuple[str, ...], now: datetime,
               workers: int = 8) -> int:
    """Ask every zone about every target, store the day's results; returns rows new or changed."""
    questions = [(dim, key, zone) for dim, key in pairs
                 for zone in (ip_zones if dim == "sending_ip" else domain_zones)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        verdicts = list(pool.map(lambda q: check(resolver, *q), questions))
    day = now.date()
    existing = {(r.dimension, r.key, r.zone): r for r in session.scalars(
        select(BlocklistCheck).where(BlocklistCheck.day == day))}
    written = 0
    for (dim, key, zone), verdict in zip(questions, verdicts):
        row = existing.get((dim, key, zone))
        is_listed = verdict.status == "listed"
        if row is None:
            session.add(BlocklistCheck(day=day, dimension=dim, key=key, zone=zone, status=verdict.status,
                                       listed=is_listed, answer=verdict.answer, error=verdict.error,
                                       first_checked_at=now, checked_at=now,
                                       listed_at=now if is_listed else None, checks=1))
            written += 1
            continue
        changed = (row.status, row.answer, row.error) != (verdict.status, verdict.answer, verdict.error)
        row.checked_at, row.checks = now, row.checks + 1
        if changed:
            row.status, row.error = verdict.status, verdict.error
            if verdict.answer is not None or not row.listed:
                row.answer = verdict.answer  # keep the listing's answer for the day
            if is_listed and not row.listed:
                row.listed, row.listed_at = True, now
            written += 1
    session.flush()
    return written


def alert_listings(session: Session, pairs: list[tuple[str, str]], now: datetime) -> int:
    """Raise a `blocklist` alert for each target listed at its last check; resolve the clean ones."""
    day = now.date()
    rows = session.scalars(select(BlocklistCheck).where(BlocklistCheck.day == day))
    by_target: dict[tuple[str, str], list[BlocklistCheck]] = {}
    for r in rows:
        by_target.setdefault((r.dimension, r.key), []).append(r)
    raised = 0
    open_alerts = {(a.dimension, a.key): a for a in session.scalars(
        select(Alert).where(Alert.status == "open", Alert.rule == "blocklist"))}
    for target in pairs:
        checks = by_target.get(target, [])
        now_listed = [r for r in checks if r.status == "listed"]
        if now_listed:
            zones = ", ".join(f"{r.zone} ({r.answer})" for r in now_listed)
            _, created = raise_alert(
                session, rule="blocklist", dimension=target[0], key=target[1], severity="critical",
                message=f"{target[1]} is listed on {zones}", now=now,
                details={"zones": [r.zone for r in now_listed], "answers": {r.zone: r.answer for r in now_listed}})
            raised += created
        elif checks and all(r.status == "clean" for r in checks) and target in open_alerts:
            resolve_alert(session, open_alerts[target], now)
    return raised


@job("blocklists", every=timedelta(hours=1), order=5)
def blocklists_job(ctx: JobContext) -> int:
    """Check the sending IPs and domains against the DNSBL/URIBL zones; alert on listings."""
    from analysis.dns import make_resolver

    cfg = ctx.settings
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        pairs = targets(session, cfg.domains, cfg.blocklists, now.date())
        if not pairs:
            return 0
        resolver = make_resolver(cfg.dns)
        written = run_checks(session, resolver, pairs, cfg.blocklists.ip_zones, cfg.blocklists.domain_zones,
                             now, cfg.blocklists.workers)
        alert_listings(session, pairs, now)
    return written
