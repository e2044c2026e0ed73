"""/metrics: the store's counters in Prometheus's text format, read at scrape time.

Every figure comes from the database, so any web process answers the same and a restart
resets nothing. Counts of append-only tables are counters; what can go down (suppressions in
force, open alerts, the quarantine) are gauges. A scrape reads each table once with one
grouped query (through the indexes on kind/status, category, job), and the answer is kept
for `CACHE_SECONDS` so that several scrapers cost one set of queries.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from sqlalchemy import case, extract, func, select
from sqlalchemy.orm import Session, sessionmaker

from store.alerts import Alert
from store.checks import JobRun
from store.clock import Clock, utcnow
from store.models import (BounceEvent, ComplaintEvent, DmarcAggregateReport, DmarcFailureReport, InboundMessage,
                          Quarantine, TlsReport)
from store.suppressions import Suppression, in_force, utc

CACHE_SECONDS = 5.0
EVENT_TABLES = (("bounce", BounceEvent), ("complaint", ComplaintEvent), ("dmarc_aggregate", DmarcAggregateReport),
                ("dmarc_failure", DmarcFailureReport), ("smtp_tls", TlsReport))


def _seconds_between(session: Session, start, end):
    """end - start in seconds, in SQL, on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


class StoreCollector:
    """A prometheus_client collector over the store."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock = utcnow) -> None:
        self.sessions, self.clock = sessions, clock

    def collect(self) -> Iterator[Metric]:
        with self.sessions() as session:
            yield from self._messages(session)
            yield from self._events(session)
            yield from self._jobs(session)
            yield from self._decisions(session)

    def _messages(self, session: Session) -> Iterator[Metric]:
        received = CounterMetricFamily("postwatch_messages_received", "Inbound messages stored, by kind and "
                                       "status (parsed, quarantined, ignored)", labels=["kind", "status"])
        for kind, status, n in session.execute(select(InboundMessage.kind, InboundMessage.status, func.count())
                                               .group_by(InboundMessage.kind, InboundMessage.status)
                                               .order_by(InboundMessage.kind, InboundMessage.status)):
            received.add_metric([kind, status], n)
        yield received
        waiting = session.scalar(select(func.count()).select_from(Quarantine).where(Quarantine.released_at.is_(None)))
        yield GaugeMetricFamily("postwatch_quarantine_messages", "Messages in quarantine now", value=waiting or 0)

    def _events(self, session: Session) -> Iterator[Metric]:
        events = CounterMetricFamily("postwatch_events", "Facts stored, by kind: bounce and complaint events, "
                                     "DMARC aggregate and failure reports, TLS reports", labels=["kind"])
        for kind, model in EVENT_TABLES:
            events.add_metric([kind], session.scalar(select(func.count()).select_from(model)) or 0)
        yield events
        bounces = CounterMetricFamily("postwatch_bounce_events", "Bounce events by category", labels=["category"])
        for category, n in session.execute(select(BounceEvent.category, func.count())
                                           .group_by(BounceEvent.category).order_by(BounceEvent.category)):
            bounces.add_metric([category], n)
        yield bounces

    def _jobs(self, session: Session) -> Iterator[Metric]:
        took = _seconds_between(session, JobRun.started_at, JobRun.finished_at)
        durations = SummaryMetricFamily("postwatch_job_duration_seconds", "Time the finished runs of each "
                                        "analysis job took", labels=["job"])
        runs = CounterMetricFamily("postwatch_job_runs", "Runs of each analysis job by result (ok, failed)",
                                   labels=["job", "result"])
        finished = JobRun.finished_at.is_not(None)
        failed = JobRun.error.is_not(None)
        for job, n, n_failed, total in session.execute(
                select(JobRun.job, func.count(), func.sum(case((failed, 1), else_=0)), func.sum(took))
                .where(finished).group_by(JobRun.job).order_by(JobRun.job)):
            durations.add_metric([job], count_value=n, sum_value=float(total or 0.0))
            runs.add_metric([job, "ok"], n - (n_failed or 0))
            runs.add_metric([job, "failed"], n_failed or 0)
        yield durations
        yield runs
        newest = (select(JobRun.job, func.max(JobRun.id).label("id")).where(finished)
                  .group_by(JobRun.job).subquery())
        last = GaugeMetricFamily("postwatch_job_last_duration_seconds", "Duration of each job's last finished "
                                 "run", labels=["job"])
        when = GaugeMetricFamily("postwatch_job_last_finished_timestamp_seconds", "When each job's last run "
                                 "finished (Unix time)", labels=["job"])
        success = GaugeMetricFamily("postwatch_job_last_success", "1 when each job's last run succeeded, 0 when "
                                    "it failed", labels=["job"])
        for run, seconds in session.execute(select(JobRun, took).join(newest, JobRun.id == newest.c.id)
                                            .order_by(JobRun.job)):
            last.add_metric([run.job], float(seconds or 0.0))
            when.add_metric([run.job], utc(run.finished_at).timestamp())
            success.add_metric([run.job], 0 if run.error else 1)
        yield last
        yield when
        yield success

    def _decisions(self, session: Session) -> Iterator[Metric]:
        now = utc(self.clock())
        suppressions = GaugeMetricFamily("postwatch_suppressions", "Suppressions in force, by source (bounce, "
                                         "complaint, unsubscribe, manual, import)", labels=["source"])
        for source, n in session.execute(select(Suppression.source, func.count()).where(*in_force(now))
                                         .group_by(Suppression.source).order_by(Suppression.source)):
            suppressions.add_metric([source], n)
        yield suppressions
        alerts = GaugeMetricFamily("postwatch_alerts_open", "Open alerts by severity", labels=["severity"])
        for severity, n in session.execute(select(Alert.severity, func.count()).where(Alert.status == "open")
                                           .group_by(Alert.severity).order_by(Alert.severity)):
            alerts.add_metric([severity], n)
        yield alerts


class Exposition:
    """The /metrics body, computed at most once per CACHE_SECONDS."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock = utcnow,
                 cache_seconds: float = CACHE_SECONDS) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StoreCollector(sessions, clock))
        self.cache_seconds = cache_seconds
        self._body: bytes = b""
        self._at = float("-inf")
        self._lock = threading.Lock()

    def render(self) -> bytes:
        with self._lock:
            if time.monotonic() - self._at >= self.cache_seconds:
                self._body = generate_latest(self.registry)
                self._at = time.monotonic()
            return self._body
