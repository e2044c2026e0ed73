"""The analysis jobs: one registry that the scheduler and `postwatch analyze` both run.

A job is a function of a `JobContext` returning how many rows it wrote. Jobs are idempotent:
running one twice in a row writes nothing new the second time.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Callable, Protocol

from sqlalchemy.orm import Session, sessionmaker

from analysis.config import (AlertsConfig, BlocklistsConfig, DmarcConfig, DnsConfig, PostmasterConfig, PrivacyConfig,
                             ProvidersConfig, ReportsConfig, SchedulerConfig, ScoresConfig, SndsConfig,
                             SunsetConfig, SuppressionConfig)
from ingest.config import DomainsConfig
from sender.config import SenderConfig, WebConfig
from store.clock import Clock

# Modules that define jobs with @job; importing them fills the registry.
JOB_MODULES: tuple[str, ...] = ("analysis.rollups", "analysis.dmarc_intel", "analysis.scores", "analysis.suppression",
                                "analysis.sunset", "analysis.privacy", "analysis.maintenance",
                                "analysis.blocklists", "analysis.alerts", "analysis.notify", "analysis.posture",
                                "analysis.provider_feeds")
# Modules whose `scheduled_jobs(settings)` makes jobs from the configuration (a digest per schedule).
JOB_PROVIDERS: tuple[str, ...] = ("analysis.digest.delivery",)


class JobSettings(Protocol):
    """The configuration sections the jobs read, each the typed section its package defines.

    postwatch.config.Config is one (the shell hands its configuration over whole); a test may
    give an object holding only the sections its job reads.
    """

    @property
    def dns(self) -> DnsConfig: ...
    @property
    def domains(self) -> DomainsConfig: ...
    @property
    def blocklists(self) -> BlocklistsConfig: ...
    @property
    def alerts(self) -> AlertsConfig: ...
    @property
    def scheduler(self) -> SchedulerConfig: ...
    @property
    def providers(self) -> ProvidersConfig: ...
    @property
    def scores(self) -> ScoresConfig: ...
    @property
    def postmaster(self) -> PostmasterConfig: ...
    @property
    def snds(self) -> SndsConfig: ...
    @property
    def dmarc(self) -> DmarcConfig: ...
    @property
    def suppression(self) -> SuppressionConfig: ...
    @property
    def sunset(self) -> SunsetConfig: ...
    @property
    def privacy(self) -> PrivacyConfig: ...
    @property
    def sender(self) -> SenderConfig: ...
    @property
    def web(self) -> WebConfig: ...
    @property
    def reports(self) -> ReportsConfig: ...


@dataclass(frozen=True)
class JobContext:
    sessions: sessionmaker[Session]
    settings: JobSettings  # the configuration: each job reads its sections
    clock: Clock
    since: date | None = None  # judge again from this day (`postwatch analyze --since`)


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[JobContext], int]
    every: timedelta | None = None  # run at this interval ...
    cron: str | None = None  # ... or on this crontab line ("0 * * * *")
    order: int = 100  # `postwatch analyze` runs jobs in this order: rollups before scores before alerts
    description: str = ""
    timezone: str | None = None  # of the crontab line; None: scheduler.timezone
    in_analyze: bool = True  # False: only on its schedule or when named (a digest sends mail)


REGISTRY: dict[str, Job] = {}


def job(name: str, *, every: timedelta | None = None, cron: str | None = None, order: int = 100,
        in_analyze: bool = True):
    """Register the decorated function as a job."""
    def register(fn: Callable[[JobContext], int]) -> Callable[[JobContext], int]:
        if name in REGISTRY and REGISTRY[name].run is not fn:
            raise ValueError(f"two jobs are named {name!r}")
        REGISTRY[name] = Job(name, fn, every, cron, order, (fn.__doc__ or "").strip().split("\n")[0],
                             in_analyze=in_analyze)
        return fn
    return register


def all_jobs(settings: JobSettings | None = None) -> list[Job]:
    """The registered jobs, and with `settings` those the configuration makes (digests)."""
    for module in JOB_MODULES:
        importlib.import_module(module)
    jobs = dict(REGISTRY)
    if settings is not None:
        for module in JOB_PROVIDERS:
            for made in importlib.import_module(module).scheduled_jobs(settings):
                jobs.setdefault(made.name, made)
    return sorted(jobs.values(), key=lambda j: (j.order, j.name))
