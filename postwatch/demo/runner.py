"""Playing the demo history into a store, one day at a time, through the real code paths.

For each day, in order: the day's raw messages go through `ingest.pipeline.Pipeline`
(stored raw, detected, parsed, classified, attributed), its send counts through
`analysis.volume.import_csv` (what `postwatch volume import` does), the blocklist check
through `analysis.blocklists.run_checks` with a stand-in resolver that answers for the
demo's listing and for every zone's test entry (a real DNSBL cannot be asked offline), and
then the analysis jobs run as the scheduler runs them — rollups, DMARC sources, scores,
suppressions, alerts — with the clock at that day, so scores, suppressions and alerts open
and resolve as they would have.

A day whose messages were all stored before (same bytes, same sha256) is skipped: running
the demo again with the same arguments adds nothing.
"""
from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable

import dns.resolver
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from analysis.blocklists import alert_listings, query_name, run_checks, test_entries, test_entry
from postwatch.demo.scenario import DOMAINS, SENDING_IPS, Scenario
from postwatch.demo.stories import DEFAULT, Listing, Story
from analysis.config import BlocklistsConfig
from analysis.jobs import Job, JobContext
from analysis.rollups import resolver_from
from analysis.scheduler import run_all, run_job
from analysis.volume import import_csv
from ingest.config import DomainsConfig
from ingest.envelope import Envelope
from ingest.pipeline import Pipeline
from store.clock import Clock, utcnow

log = logging.getLogger(__name__)

DAILY_JOBS = ("rollups", "dmarc_sources", "scores", "suppression", "alerts")
SOURCE = "demo"  # the source label of the demo's messages


@dataclass
class DemoResult:
    start: date
    end: date
    messages: int = 0  # new messages stored
    duplicates: int = 0  # messages stored by an earlier run
    kinds: collections.Counter = field(default_factory=collections.Counter)  # new messages by kind
    statuses: collections.Counter = field(default_factory=collections.Counter)  # parsed / quarantined / ignored
    events: int = 0
    sent: int = 0  # volume imported
    days_played: int = 0
    failed_jobs: list[str] = field(default_factory=list)  # "2026-03-02 scores: error"
    episodes: dict[str, tuple[date, date]] = field(default_factory=dict)


class _Answer(list):
    """What the stand-in resolver returns: a list of records with .address / .strings."""


class _Record:
    def __init__(self, address: str | None = None, text: str | None = None) -> None:
        self.address = address
        self.strings = [text.encode()] if text is not None else []


class ListingResolver:
    """Answers DNSBL questions for the demo: the story's listed IP is on its zone while `listed`,
    and every zone lists its test entry (so the other answers count as clean); nothing else is."""

    def __init__(self, blocklists: BlocklistsConfig, listing: Listing = DEFAULT.listing) -> None:
        self.listed = False
        self.listing = listing
        zones = tuple(blocklists.ip_zones)
        zone = listing.zone if listing.zone in zones or not zones else zones[0]
        self.name = query_name("sending_ip", listing.ip, zone)
        entries = test_entries(blocklists.test_entries)
        kinds = (("sending_ip", blocklists.ip_zones), ("sending_domain", blocklists.domain_zones))
        self.tests = {query_name(dim, test_entry(dim, z, entries), z) for dim, zones in kinds for z in zones}

    def resolve(self, qname: str, rdtype: str = "A", **_: Any) -> _Answer:
        name = qname.rstrip(".").lower()
        if self.listed and name == self.name:
            if rdtype == "TXT":
                return _Answer([_Record(text=self.listing.text.format(ip=self.listing.ip))])
            return _Answer([_Record(address=self.listing.answer)])
        if name in self.tests and rdtype == "A":
            return _Answer([_Record(address="127.0.0.2")])
        raise dns.resolver.NXDOMAIN()


def run_demo(sessions: sessionmaker[Session], settings: Any, *, days: int = 90, seed: int = 7,
             end: date | None = None, scale: float = 1.0, clock: Clock = utcnow,
             on_day: Callable[[date, int], None] | None = None, story: Story = DEFAULT) -> DemoResult:
    """Fill the store with `days` days of `story` ending on `end` (default: today)."""
    if days < 2:
        raise ValueError("the demo needs at least 2 days (the DMARC and TLS reports of a day arrive the next)")
    real_now = clock()
    end = end or real_now.date()
    now = real_now if end >= real_now.date() else datetime.combine(end, time(23, 59, 59), timezone.utc)
    start = end - timedelta(days=days - 1)
    scenario = Scenario(start, days, seed=seed, scale=scale, story=story)
    result = DemoResult(start, end, episodes=scenario.timeline.episodes())
    current = [datetime.combine(start, time(), timezone.utc)]
    pipeline = Pipeline(sessions, settings.ingest, clock=lambda: current[0], domains=demo_domains(settings))
    ctx = JobContext(sessions, settings, lambda: current[0])
    resolver = ListingResolver(settings.blocklists, story.listing)
    blocklists = Job("blocklists", lambda c: _check_blocklists(c, settings, resolver), order=5,
                     description="Check the sending IPs and domains against the DNSBL/URIBL zones")
    providers = resolver_from(settings)
    for offset in range(days):
        day = start + timedelta(days=offset)
        plan = scenario.plan_day(day, now)
        if not plan.messages:
            continue
        current[0] = min(plan.messages[-1][0], now)  # when the day's last message came in
        new = 0
        for out in pipeline.ingest_many([(raw, Envelope(SOURCE)) for _, raw in plan.messages], workers=1):
            if out.duplicate:
                result.duplicates += 1
                continue
            new += 1
            result.kinds[out.kind] += 1
            result.statuses[out.status] += 1
            result.events += out.events
        result.messages += new
        if not new:
            continue  # played before
        result.days_played += 1
        with sessions.begin() as session:
            imported = import_csv(session, plan.volume_csv(), providers=providers, now=current[0], source=SOURCE)
            if imported.errors:  # the scenario made a bad row: a bug, not something a user did
                raise RuntimeError("demo volume rows refused: " + "; ".join(imported.errors[:3]))
            result.sent += imported.total_sent
        current[0] = min(datetime.combine(day, time(23, 30), timezone.utc), now)
        resolver.listed = plan.listed
        for r in [run_job(blocklists, ctx, SOURCE), *run_all(ctx, trigger=SOURCE, only=list(DAILY_JOBS))]:
            if r.error:
                result.failed_jobs.append(f"{day} {r.job}: {r.error}")
        if on_day:
            on_day(day, new)
    return result


def demo_domains(settings: Any) -> DomainsConfig:
    """What the demo sender sends as, for attributing its bounces and complaints: the
    configured [domains] when there are any, else the demo's own domains and IPs."""
    domains = getattr(settings, "domains", None) or DomainsConfig()
    if domains.sending_ips:
        return domains
    return replace(domains, sending_domains=domains.sending_domains or DOMAINS, sending_ips=SENDING_IPS)


def _check_blocklists(ctx: JobContext, settings: Any, resolver: ListingResolver) -> int:
    """The blocklist job's own storing and alerting, asked through the stand-in resolver."""
    now = ctx.clock()
    pairs = [("sending_ip", ip) for ip in SENDING_IPS] + [("sending_domain", d) for d in DOMAINS]
    with ctx.sessions.begin() as session:
        written = run_checks(session, resolver, pairs, settings.blocklists.ip_zones,
                             settings.blocklists.domain_zones, now, workers=1,
                             entries=settings.blocklists.test_entries)
        alert_listings(session, pairs, now)
    return written


def store_has_data(sessions: sessionmaker[Session]) -> bool:
    """Whether any message is stored (`make run` plays the demo only into an empty store)."""
    from store.models import InboundMessage

    with sessions() as session:
        return bool(session.scalar(select(func.count()).select_from(InboundMessage)))
