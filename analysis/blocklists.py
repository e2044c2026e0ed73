"""Blocklist checks: the sending IPs and domains against DNSBL and URIBL zones.

A DNSBL is asked by name: `4.3.2.1.zen.spamhaus.org` for 1.2.3.4 (IPv6: the 32 nibbles,
reversed), `example.com.dbl.spamhaus.org` for a domain. An A answer in 127.0.0.0/8 is a
listing (its TXT says why); NXDOMAIN is clean — but only from a zone that has just listed
its test entry: each run first asks every zone for the entry it documents as always listed
(RFC 5782: 127.0.0.2, the domain `test`; dbltest.com for Spamhaus DBL, configurable) and for
the one no zone may list (127.0.0.1, `invalid`). A zone failing that test, an error code
(Spamhaus 127.255.255.x, URIBL/SURBL 127.0.0.1: the query refused), a time-out or a server
failure gives `unknown`: never a listing, never clean.
"""
from __future__ import annotations

import ipaddress
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Mapping

import dns.exception
import dns.resolver
from sqlalchemy import select
from sqlalchemy.orm import Session

from analysis.config import BlocklistsConfig
from analysis.dns import failure
from analysis.jobs import JobContext, job
from store.alerts import Alert, raise_alert, resolve_alert
from store.checks import BlocklistCheck

log = logging.getLogger(__name__)

DIMENSIONS = ("sending_ip", "sending_domain")
# RFC 5782 section 5: every IP zone lists 127.0.0.2 and no zone lists 127.0.0.1; every domain
# zone lists "test" and none lists "invalid"
TEST_ENTRY = {"sending_ip": "127.0.0.2", "sending_domain": "test"}
NEVER_LISTED = {"sending_ip": "127.0.0.1", "sending_domain": "invalid"}
# answers that are the zone refusing the query, not a listing: code -> (what, what to do)
ERROR_CODES = {
    "127.255.255.252": ("typing error in the zone name", "check the zone's name in [blocklists]"),
    "127.255.255.254": ("public/open resolver", "ask through a resolver of your own ([dns] nameservers)"),
    "127.255.255.255": ("excessive number of queries", "ask less often, or through the zone's query service"),
    "127.0.0.1": ("query blocked", "ask through a resolver of your own ([dns] nameservers)"),  # URIBL, SURBL
}
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


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
    status: str  # listed | clean | unknown
    answer: str | None = None
    error: str | None = None  # why it is unknown


@dataclass(frozen=True)
class ZoneTest:
    """Whether a zone's answers count this run: `reason` says why not."""

    dimension: str
    zone: str
    entry: str
    reason: str | None = None


def query_name(dimension: str, key: str, zone: str) -> str:
    """The DNS name to ask `zone` about an IP (reversed octets / nibbles) or a domain."""
    zone = zone.strip(".")
    if dimension == "sending_ip":
        addr = ipaddress.ip_address(key)
        # reverse_pointer is "4.3.2.1.in-addr.arpa" / "b.a.9.8...ip6.arpa": the reversed form we need
        return addr.reverse_pointer.rsplit(".", 2)[0] + "." + zone
    return key.strip(".").lower() + "." + zone


def test_entries(entries: tuple[str, ...]) -> dict[str, str]:
    """[blocklists] test_entries ("ZONE=ENTRY") as zone -> entry."""
    out = {}
    for item in entries:
        zone, _, entry = item.partition("=")
        out[zone.strip().strip(".").lower()] = entry.strip()
    return out


def test_entry(dimension: str, zone: str, entries: Mapping[str, str]) -> str:
    """The entry `zone` must list: the configured one, else RFC 5782's."""
    entry = entries.get(zone.strip(".").lower())
    if entry is None or _is_ip(entry) != (dimension == "sending_ip"):
        return TEST_ENTRY[dimension]
    return entry


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _ask(resolver: dns.resolver.Resolver, name: str) -> tuple[list[str] | None, str | None]:
    """(the A records, None); ([], None) when the name is not listed; (None, failure) when the DNS failed."""
    try:
        answer = resolver.resolve(name, "A")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return [], None
    except dns.exception.DNSException as exc:
        return None, failure(exc)
    return sorted(r.address for r in answer), None


def _not_a_listing(zone: str, addrs: list[str]) -> str | None:
    """Why these A records are not a listing (an error code, an answer outside 127/8); None if they are."""
    for addr in addrs:
        if addr in ERROR_CODES or addr.startswith("127.255.255."):
            what, todo = ERROR_CODES.get(addr, ("an error code", "see the zone's documentation"))
            return f"{zone} refused the query ({addr}: {what}): {todo}"
    outside = [a for a in addrs if ipaddress.ip_address(a) not in _LOOPBACK]
    if outside:  # e.g. a resolver that answers every name with an advertising page
        return f"{zone} answered {outside[0]}, outside 127.0.0.0/8: is the resolver rewriting NXDOMAIN?"
    return None


def test_zone(resolver: dns.resolver.Resolver, dimension: str, zone: str, entry: str) -> ZoneTest:
    """Ask `zone` for its test entry (must be listed) and for the entry no zone lists."""
    zone = zone.strip(".")
    name = query_name(dimension, entry, zone)
    addrs, failed = _ask(resolver, name)
    if failed:
        return ZoneTest(dimension, zone, entry, f"{failed} asking {zone} for its test entry {entry}")
    if not addrs:
        return ZoneTest(dimension, zone, entry,
                        f"{zone} did not list its test entry {entry} ({name}): its answers cannot be trusted")
    problem = _not_a_listing(zone, addrs)
    if problem:
        return ZoneTest(dimension, zone, entry, problem)
    never = NEVER_LISTED[dimension]
    addrs, failed = _ask(resolver, query_name(dimension, never, zone))
    if failed:
        return ZoneTest(dimension, zone, entry, f"{failed} asking {zone} for {never}")
    if addrs:
        return ZoneTest(dimension, zone, entry, _not_a_listing(zone, addrs)
                        or f"{zone} lists {never}, which no zone may list: it answers every name as listed")
    return ZoneTest(dimension, zone, entry)


def check(resolver: dns.resolver.Resolver, dimension: str, key: str, zone: str) -> Verdict:
    """What `zone` says of one target (its test entry asked beforehand: see test_zone)."""
    name = query_name(dimension, key, zone)
    addrs, failed = _ask(resolver, name)
    if failed:
        return Verdict("unknown", error=f"{failed} asking {zone}")
    if not addrs:
        return Verdict("clean")
    problem = _not_a_listing(zone, addrs)
    if problem:
        return Verdict("unknown", answer=", ".join(addrs), error=problem)
    text = _txt(resolver, name)
    return Verdict("listed", answer=", ".join(addrs) + (f" {text}" if text else ""))


def _txt(resolver: dns.resolver.Resolver, name: str) -> str:
    try:
        answer = resolver.resolve(name, "TXT")
    except dns.exception.DNSException:
        return ""
    return " ".join(b"".join(r.strings).decode("utf-8", "replace") for r in answer)[:500]


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
               workers: int = 8, entries: tuple[str, ...] = BlocklistsConfig.test_entries) -> int:
    """Test every zone, then ask those that passed about every target; store the day's results.

    Returns the rows new or changed. A zone's test is asked once per run; a zone that fails it
    is not asked about the targets, which are `unknown` with the zone's reason.
    """
    configured = test_entries(entries)
    questions = [(dim, key, zone) for dim, key in pairs
                 for zone in (ip_zones if dim == "sending_ip" else domain_zones)]
    zones = sorted({(dim, zone) for dim, _, zone in questions})
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        tests = dict(zip(zones, pool.map(lambda z: test_zone(resolver, *z, test_entry(*z, configured)), zones)))
        for t in tests.values():
            if t.reason:
                log.warning("blocklist zone %s: %s; its results are unknown this run", t.zone, t.reason)

        def ask(dim: str, key: str, zone: str) -> Verdict:
            reason = tests[(dim, zone)].reason
            return Verdict("unknown", error=reason) if reason else check(resolver, dim, key, zone)

        verdicts = list(pool.map(lambda q: ask(*q), questions))
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
        row.checked_at, row.checks = now, row.checks + 1  # the same day's row: no new one
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
    """Raise a `blocklist` alert for each target listed at its last check; resolve those clean on
    every zone. `unknown` neither raises nor resolves."""
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
            # every zone must say clean: an unknown answer says neither listed nor delisted
            resolve_alert(session, open_alerts[target], now)
    return raised


# after the rollups (whose sending IPs and domains it checks: run before them, a second
# `postwatch analyze` would find new targets) and before the scores (which read its listings)
@job("blocklists", every=timedelta(hours=1), order=12)
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
                             now, cfg.blocklists.workers, cfg.blocklists.test_entries)
        alert_listings(session, pairs, now)
    return written
