"""Running the analysis jobs: once now (`postwatch analyze`), or on their schedules
(`postwatch scheduler`, APScheduler 3 with its SQLAlchemy job store in the same database).

Every run is recorded in `job_runs` — start, end, rows written, error. A job that fails has
its error recorded and logged; the others still run.

Several processes may share a store, so two locks of the store (store.locks) keep order: a
scheduler runs jobs only while it holds the "scheduler" lock — any number may run, one leads
and the others stand by until it dies — and every run of a job, scheduled or not, holds the
"jobs" lock, so one job at a time runs on a store.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from analysis.config import SchedulerConfig
from analysis.jobs import Job, JobContext, all_jobs
from store.checks import JobRun
from store.locks import LocalLock, store_lock, whoami

log = logging.getLogger(__name__)

SCHEDULER_LOCK = "scheduler"  # held by the leading scheduler for as long as it leads
JOBS_LOCK = "jobs"  # held for each run of a job: one job at a time per store
JOB_LOCK_POLL = 0.5  # seconds between tries while another process runs a job


@dataclass(frozen=True)
class RunResult:
    job: str
    rows: int | None
    seconds: float
    error: str | None


def run_job(job: Job, ctx: JobContext, trigger: str) -> RunResult:
    """Run one job and record it; never raises for the job's own failure. Waits while another
    process (a scheduler, another `postwatch analyze`) runs a job on the same store."""
    with _one_job_at_a_time(ctx, job.name):
        return _run_job(job, ctx, trigger)


@contextmanager
def _one_job_at_a_time(ctx: JobContext, name: str):
    engine = ctx.sessions.kw.get("bind")
    lock = LocalLock() if engine is None else store_lock(engine, JOBS_LOCK)
    told = False
    while not lock.try_acquire():
        if not told:
            log.warning("job %s waits: %s is running a job on this store", name,
                        _holder(lock, "another postwatch process"))
            told = True
        time.sleep(JOB_LOCK_POLL)
    if told:
        log.warning("job %s: the other job has finished; running", name)
    try:
        yield
    finally:
        lock.release()


def _holder(lock, unknown: str = "unknown") -> str:
    try:
        return lock.holder() or unknown
    except (SQLAlchemyError, OSError):
        return unknown


def _run_job(job: Job, ctx: JobContext, trigger: str) -> RunResult:
    with ctx.sessions.begin() as session:
        record = JobRun(job=job.name, trigger=trigger, started_at=ctx.clock())
        session.add(record)
    began = time.monotonic()
    rows, error = None, None
    try:
        rows = int(job.run(ctx) or 0)
    except Exception as exc:  # a job's failure is its run's record, not the scheduler's end
        error = f"{type(exc).__name__}: {exc}"
        log.error("job %s failed: %s\n%s", job.name, error, traceback.format_exc())
    seconds = time.monotonic() - began
    if error is None:
        log.info("job %s: %d row(s) in %.2fs", job.name, rows, seconds)
    with ctx.sessions.begin() as session:
        done = session.get_one(JobRun, record.id)
        done.finished_at, done.rows, done.error = ctx.clock(), rows, error
    return RunResult(job.name, rows, seconds, error)


def run_all(ctx: JobContext, trigger: str = "analyze", only: list[str] | None = None,
            on_result=None) -> list[RunResult]:
    """Every registered job (or those named in `only`), once, in their order; a job that is not
    `in_analyze` (a digest) runs only when named."""
    jobs = all_jobs(ctx.settings)
    if only:
        unknown = sorted(set(only) - {j.name for j in jobs})
        if unknown:
            raise ValueError(f"no job named {', '.join(unknown)}; the jobs are: "
                             + ", ".join(j.name for j in jobs))
        jobs = [j for j in jobs if j.name in only]
    else:
        jobs = [j for j in jobs if j.in_analyze]
    results = []
    for job in jobs:
        result = run_job(job, ctx, trigger)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def schedule_text(job: Job) -> str:
    if job.cron:
        return f"cron {job.cron}" + (f" ({job.timezone})" if job.timezone else "")
    if job.every:
        secs = int(job.every.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if secs % size == 0:
                return f"every {secs // size}{unit}"
        return f"every {secs}s"
    return "on demand"


def last_runs(session) -> dict[str, JobRun]:
    """The newest run of each job."""
    newest = select(JobRun.job, func.max(JobRun.id).label("id")).group_by(JobRun.job).subquery()
    rows = session.scalars(select(JobRun).join(newest, JobRun.id == newest.c.id))
    return {r.job: r for r in rows}


# ---------------------------------------------------------------- the scheduler

_context: JobContext | None = None  # set while a scheduler runs in this process


def run_scheduled(name: str) -> None:
    """What APScheduler calls (stored in its job store by reference, with the job's name only)."""
    ctx = _context
    if ctx is None:
        log.error("job %s fired with no scheduler context (or after the lock was lost); skipped", name)
        return
    jobs = {j.name: j for j in all_jobs(ctx.settings)}
    if name not in jobs:
        log.warning("job %s is in the job store but no longer registered; skipped", name)
        return
    run_job(jobs[name], ctx, "scheduler")


def build_scheduler(ctx: JobContext, engine: Engine, scheduler_cfg: SchedulerConfig, now: datetime | None = None):
    """A BackgroundScheduler with one entry per registered job in the SQLAlchemy job store."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    global _context
    _context = ctx
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=scheduler_cfg.jobstore_table)},
        executors={"default": {"type": "threadpool", "max_workers": 1}},  # one job at a time
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": scheduler_cfg.misfire_grace_seconds},
        timezone=scheduler_cfg.timezone)
    jobs = all_jobs(ctx.settings)
    start_at = now or ctx.clock()
    for job in jobs:
        if job.cron:
            trigger = CronTrigger.from_crontab(job.cron, timezone=job.timezone or scheduler_cfg.timezone)
        elif job.every:
            trigger = IntervalTrigger(seconds=int(job.every.total_seconds()), timezone=scheduler_cfg.timezone)
        else:
            continue
        options = {"next_run_time": start_at} if scheduler_cfg.run_at_start and job.in_analyze else {}
        scheduler.add_job(run_scheduled, trigger, args=[job.name], id=job.name, name=job.name,
                          replace_existing=True, **options)
    return scheduler, {j.name for j in jobs}


def run_forever(ctx: JobContext, engine: Engine, scheduler_cfg: SchedulerConfig, stop: threading.Event) -> None:
    """Lead or stand by until `stop` is set, then shut down after the running job.

    Only the holder of the store's scheduler lock runs jobs; without it, try again every
    `lock_poll_seconds`. The leader checks as often that it still holds the lock, and when it
    does not (its connection closed: a database restart), stops running jobs and stands by."""
    lock = store_lock(engine, SCHEDULER_LOCK, dedicated=True)
    poll = scheduler_cfg.lock_poll_seconds
    standing_by = False
    try:
        while not stop.is_set():
            try:
                leading = lock.try_acquire()
            except SQLAlchemyError as exc:
                log.warning("scheduler: cannot take the lock (%s); trying again in %g s",
                            str(exc).splitlines()[0], poll)
                leading = False
            if not leading:
                if not standing_by:
                    log.info("scheduler: standby, waiting for the lock (%s, held by %s)", lock.describe(),
                             _holder(lock))
                    standing_by = True
                stop.wait(poll)
                continue
            standing_by = False
            log.info("scheduler: leader (%s holds the %s)", whoami(), lock.describe())
            _lead(ctx, engine, scheduler_cfg, stop, lock)
            if not stop.is_set():
                log.error("scheduler: lost the %s (its connection closed, or its file was removed); "
                          "no more jobs here: back to standby", lock.describe())
    finally:
        lock.release()


def _lead(ctx: JobContext, engine, scheduler_cfg, stop: threading.Event, lock) -> None:
    """Run the jobs on their schedules until `stop` is set or the lock is lost."""
    global _context
    scheduler, names = build_scheduler(ctx, engine, scheduler_cfg)
    scheduler.start()
    try:
        for stored in scheduler.get_jobs():  # jobs of an older version of postwatch
            if stored.id not in names:
                scheduler.remove_job(stored.id)
        log.info("scheduler started with %d job(s)", len(names))
        while not stop.wait(scheduler_cfg.lock_poll_seconds):
            if not lock.check():
                _context = None  # what is due from now on is skipped, not run unguarded
                return
    finally:
        scheduler.shutdown(wait=True)
        log.info("scheduler stopped")


def leader(engine) -> tuple[str | None, str]:
    """Who holds the scheduler lock of the store behind `engine` (host:pid, or None), and the lock."""
    lock = store_lock(engine, SCHEDULER_LOCK)
    return lock.holder(), lock.describe()


def next_runs(engine, scheduler_cfg) -> dict[str, datetime]:
    """Next run time of each job, from APScheduler's job store (empty before the first scheduler)."""
    from sqlalchemy import inspect

    if not inspect(engine).has_table(scheduler_cfg.jobstore_table):
        return {}
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    store = SQLAlchemyJobStore(engine=engine, tablename=scheduler_cfg.jobstore_table)
    store.start(None, "default")
    try:
        return {j.id: j.next_run_time for j in store.get_all_jobs() if j.next_run_time}
    except Exception as exc:  # a job store written by another version: say nothing rather than fail
        log.debug("cannot read the job store: %s", exc)
        return {}
