"""Running jobs: in order, recorded, a failure recorded without stopping the others; the
APScheduler wiring with its job store in the same database; the commands as a user runs them."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select

from analysis import jobs as registry
from analysis.jobs import Job, JobContext
from analysis.config import SchedulerConfig
from analysis.scheduler import build_scheduler, run_all, schedule_text
from postwatch.config import Config
from store.checks import JobRun
from store.engine import get_engine

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def fake_jobs(monkeypatch):
    calls: list[str] = []

    def make(name, rows=None, fail=False):
        def run(ctx):
            calls.append(name)
            if fail:
                raise RuntimeError(f"{name} broke")
            return rows
        return run

    jobs = {j.name: j for j in (
        Job("later", make("later", 0), every=timedelta(minutes=5), order=30),
        Job("first", make("first", 3), every=timedelta(hours=1), order=5),
        Job("boom", make("boom", fail=True), every=timedelta(minutes=15), order=20),
        Job("nightly", make("nightly", 1), cron="30 3 * * *", order=40))}
    monkeypatch.setattr(registry, "REGISTRY", jobs)
    monkeypatch.setattr(registry, "JOB_MODULES", ())
    return calls


def test_jobs_run_in_order_and_every_run_is_recorded(store, fake_jobs):
    ctx = JobContext(sessions=store, settings=Config(), clock=lambda: NOW)
    results = run_all(ctx)
    assert fake_jobs == ["first", "boom", "later", "nightly"]
    assert [(r.job, r.rows, r.error) for r in results] == [
        ("first", 3, None), ("boom", None, "RuntimeError: boom broke"), ("later", 0, None), ("nightly", 1, None)]
    with store() as s:
        runs = s.scalars(select(JobRun).order_by(JobRun.id)).all()
    assert [(r.job, r.trigger, r.rows, r.error) for r in runs] == [
        ("first", "analyze", 3, None), ("boom", "analyze", None, "RuntimeError: boom broke"),
        ("later", "analyze", 0, None), ("nightly", "analyze", 1, None)]
    assert all(r.started_at is not None and r.finished_at is not None for r in runs)


def test_only_named_jobs_and_unknown_names(store, fake_jobs):
    ctx = JobContext(sessions=store, settings=Config(), clock=lambda: NOW)
    run_all(ctx, only=["later", "first"])
    assert fake_jobs == ["first", "later"]
    with pytest.raises(ValueError, match="no job named nope"):
        run_all(ctx, only=["nope"])


def test_schedule_text():
    assert schedule_text(Job("a", lambda c: 0, every=timedelta(hours=1))) == "every 1h"
    assert schedule_text(Job("a", lambda c: 0, every=timedelta(seconds=90))) == "every 90s"
    assert schedule_text(Job("a", lambda c: 0, cron="0 * * * *")) == "cron 0 * * * *"


def test_the_scheduler_keeps_its_jobs_in_the_database_and_runs_them(store, database, fake_jobs):
    from store.clock import utcnow

    ctx = JobContext(sessions=store, settings=Config(database=database), clock=utcnow)
    engine = get_engine(database)
    cfg = SchedulerConfig(jobstore_table="apscheduler_jobs")
    scheduler, names = build_scheduler(ctx, engine, cfg)
    scheduler.start()
    try:
        deadline = time.monotonic() + 60  # waiting for a condition, not measuring time
        while len(fake_jobs) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        stored = {j.id: j for j in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=True)
    assert names == {"first", "boom", "later", "nightly"} == set(stored)
    assert sorted(fake_jobs) == ["boom", "first", "later", "nightly"]  # the failure stopped nothing
    assert inspect(engine).has_table("apscheduler_jobs")
    job = stored["boom"]
    assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, cfg.misfire_grace_seconds)
    with store() as s:
        runs = {r.job: r for r in s.scalars(select(JobRun))}
    assert runs["boom"].error == "RuntimeError: boom broke" and runs["boom"].trigger == "scheduler"
    assert runs["first"].rows == 3


def test_the_scheduler_stops_on_request(store, database, fake_jobs):
    from analysis.scheduler import run_forever
    from store.clock import utcnow

    ctx = JobContext(sessions=store, settings=Config(database=database), clock=utcnow)
    stop = threading.Event()
    thread = threading.Thread(target=run_forever, args=(ctx, get_engine(database), SchedulerConfig(), stop))
    thread.start()
    deadline = time.monotonic() + 60
    while len(fake_jobs) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(60)
    assert not thread.is_alive() and len(fake_jobs) == 4


# ---------------------------------------------------------------- the commands, as a user runs them

def _run(args, cwd, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "postwatch.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=full_env, timeout=120)


def test_analyze_and_jobs_commands(tmp_path):
    env = {"POSTWATCH_DATABASE__URL": f"sqlite:///{tmp_path}/store.db"}
    proc = _run(["analyze"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert names[:2] == ["rollups", "blocklists"] and {"alerts", "notify", "posture"} <= set(names)
    assert names.index("alerts") < names.index("notify") < names.index("posture")
    assert all(line.rstrip().endswith("ok") for line in proc.stdout.splitlines())

    proc = _run(["jobs"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["job", "schedule", "last"]
    assert lines[-1].startswith("scheduler: none running (file lock ")  # who leads: nobody now
    by_name = {line.split()[0]: line for line in lines[1:-1]}
    assert set(by_name) == set(names) | {"provider_feeds"}  # listed; run only on its schedule or when named
    assert "every 1h" in by_name["blocklists"] and by_name["alerts"].rstrip().endswith("ok")


def test_analyze_reports_a_failing_job_runs_the_rest_and_exits_1(tmp_path):
    # two DNS ports: the resolver cannot be built, so the jobs that need DNS fail — before any query
    env = {"POSTWATCH_DATABASE__URL": f"sqlite:///{tmp_path}/store.db",
           "POSTWATCH_DOMAINS__SENDING_DOMAINS": "send.example",
           "POSTWATCH_DNS__NAMESERVERS": "127.0.0.1:5301,127.0.0.2:5302"}
    proc = _run(["analyze"], tmp_path, env)
    assert proc.returncode == 1
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert "FAILED: ValueError: dns.nameservers: all servers must use the same port" in lines["blocklists"]
    assert "FAILED" in lines["posture"]
    assert lines["alerts"].rstrip().endswith("ok") and lines["notify"].rstrip().endswith("ok")
    assert "2 of" in proc.stderr and "blocklists, posture" in proc.stderr
    jobs = _run(["jobs", "--json"], tmp_path, env)
    import json

    rows = {r["job"]: r for r in map(json.loads, jobs.stdout.splitlines())}
    assert rows["blocklists"]["state"] == "failed" and "same port" in rows["blocklists"]["error"]
    assert rows["alerts"]["state"] == "ok"
    assert _run(["analyze", "--job", "nope"], tmp_path, env).returncode == 2
