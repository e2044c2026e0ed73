"""One effective scheduler per store: the scheduler lock (a PostgreSQL advisory lock, or a file
lock beside a SQLite file), the standby that takes over when the leader dies, the leader that
stands down when it loses its lock, and the jobs lock that keeps manual runs apart from the
scheduler's."""
from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from analysis import jobs as registry
from analysis.config import SchedulerConfig
from analysis.jobs import Job, JobContext
from analysis.scheduler import JOBS_LOCK, SCHEDULER_LOCK, run_all, run_forever
from postwatch.config import Config
from store.checks import JobRun
from store.clock import utcnow
from store.engine import get_engine
from store.locks import AdvisoryLock, FileLock, lock_key, store_lock, whoami
from tests.conftest import ROOT

WAIT = 90  # seconds: a bound on waiting for a condition, never a measurement


def wait_for(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture
def ticking(monkeypatch):
    """One job, every second; the times it started."""
    starts: list[float] = []

    def tick(ctx):
        starts.append(time.time())
        return 1

    registry.all_jobs(Config())  # the job modules register into the real registry, not into this one
    monkeypatch.setattr(registry, "REGISTRY", {"tick": Job("tick", tick, every=timedelta(seconds=1))})
    monkeypatch.setattr(registry, "JOB_MODULES", ())
    return starts


def test_the_lock_key_is_fixed_and_documented():
    key = lock_key("postwatch scheduler")
    assert key == lock_key("postwatch scheduler") and -2**63 <= key < 2**63
    assert str(key) in (ROOT / "docs" / "commands.md").read_text()


def test_two_file_locks_on_one_file_exclude_each_other(tmp_path):
    path = tmp_path / "postwatch.db.scheduler.lock"
    first, second = FileLock(path), FileLock(path)
    assert first.holder() is None
    assert first.try_acquire() and first.check()
    assert not second.try_acquire()
    assert second.holder() == whoami()
    first.release()
    assert first.holder() is None
    assert second.try_acquire() and not first.try_acquire()
    path.unlink()  # the file a newcomer would lock is another one: the holder no longer leads
    assert not second.check()
    assert first.try_acquire()
    first.release()


def test_a_file_lock_is_freed_when_its_process_is_killed(tmp_path):
    path = tmp_path / "postwatch.db.scheduler.lock"
    code = ("import sys, time; from store.locks import FileLock; l = FileLock(sys.argv[1]); "
            "assert l.try_acquire(); print('held', flush=True); time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        ours = FileLock(path)
        assert not ours.try_acquire()
        assert ours.holder().endswith(f":{child.pid}")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert ours.try_acquire()
    ours.release()


def test_the_store_picks_its_lock_and_two_holders_exclude_each_other(database):
    engine = get_engine(database)
    first, second = store_lock(engine, SCHEDULER_LOCK, dedicated=True), store_lock(engine, SCHEDULER_LOCK)
    if engine.url.get_backend_name() == "sqlite":
        assert isinstance(first, FileLock)
        assert first.path == Path(engine.url.database).with_name("postwatch.db.scheduler.lock")
    else:
        assert isinstance(first, AdvisoryLock) and first.key == lock_key("postwatch scheduler")
    assert first.try_acquire()
    assert not second.try_acquire()
    assert second.holder() == whoami()
    other = store_lock(engine, JOBS_LOCK)  # another name, another lock
    assert other.try_acquire()
    other.release()
    first.release()
    assert second.holder() is None
    assert second.try_acquire()
    second.release()


def test_a_lost_advisory_lock_connection_is_noticed(database, postgres_server):
    if postgres_server is None:
        pytest.skip("runs in the PostgreSQL pass (POSTWATCH_DATABASE__URL)")
    engine = get_engine(database)
    lock = store_lock(engine, SCHEDULER_LOCK, dedicated=True)
    assert lock.try_acquire() and lock.check()
    with engine.connect() as conn:  # what a server restart does to the session
        ended = conn.scalar(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                 "WHERE application_name LIKE 'postwatch scheduler %'"))
    assert ended == 1
    assert not lock.check()
    assert lock.try_acquire()  # a new session takes it again
    lock.release()


def test_a_leader_that_loses_its_lock_runs_no_more_jobs_and_stands_by(database, postgres_server, store, ticking,
                                                                      caplog):
    if postgres_server is None:
        pytest.skip("runs in the PostgreSQL pass (POSTWATCH_DATABASE__URL)")
    caplog.set_level(logging.INFO, logger="analysis.scheduler")
    engine = get_engine(database)
    ctx = JobContext(sessions=store, settings=Config(database=database), clock=utcnow)
    stop = threading.Event()
    thread = threading.Thread(target=run_forever,
                              args=(ctx, engine, SchedulerConfig(lock_poll_seconds=0.2), stop))
    thread.start()
    # the rival queues for the lock first, so it gets the lock the moment the leader loses it
    rival = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    rival_holds = threading.Event()
    key = lock_key("postwatch scheduler")

    def queue():
        rival.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        rival_holds.set()

    queued = threading.Thread(target=queue)
    try:
        wait_for(lambda: len(ticking) >= 2, "the leader to run the job twice")

        def records(fragment):
            return [r for r in caplog.records if fragment in r.getMessage()]

        queued.start()
        with engine.connect() as conn:
            wait_for(lambda: conn.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                              "AND NOT granted")), "the rival to queue for the lock")
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name LIKE 'postwatch scheduler %'"))
        wait_for(rival_holds.is_set, "the rival to get the freed lock")
        [lost] = wait_for(lambda: records("scheduler: lost the"), "the leader to notice")
        wait_for(lambda: records("scheduler: standby"), "the old leader to stand by")
        # the job is due every second: while the rival holds the lock, it would have run
        while time.time() < lost.created + 3:
            time.sleep(0.1)
        assert [t for t in ticking if t > lost.created] == []
        rival.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        wait_for(lambda: len(records("scheduler: leader")) == 2, "the scheduler to lead again")
        wait_for(lambda: [t for t in ticking if t > lost.created], "the job to run again")
    finally:
        stop.set()
        thread.join(WAIT)  # the scheduler lets its lock go: a rival still queued gets it and returns
        if queued.ident is not None:
            queued.join(WAIT)
        rival.close()
    assert not thread.is_alive()


def test_a_manual_run_waits_for_the_job_another_process_runs(store, ticking, caplog):
    caplog.set_level(logging.WARNING, logger="analysis.scheduler")
    running = store_lock(store.kw["bind"], JOBS_LOCK)  # what the scheduler holds while it runs a job
    assert running.try_acquire()
    ctx = JobContext(sessions=store, settings=Config(), clock=utcnow)
    results = []
    thread = threading.Thread(target=lambda: results.extend(run_all(ctx)))
    thread.start()
    try:
        waiting = wait_for(lambda: [r.getMessage() for r in caplog.records if "waits" in r.getMessage()],
                           "the manual run to say it waits")
        assert ticking == []  # it said so before running anything
        assert f"{whoami()} is running a job" in waiting[0]
    finally:
        running.release()
    thread.join(WAIT)
    assert len(ticking) == 1 and [r.error for r in results] == [None]


# ---------------------------------------------------------------- two real scheduler processes

def _start(argv, tmp_path, name):
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    out = open(tmp_path / f"{name}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "postwatch.cli", "--config", str(tmp_path / "postwatch.toml"),
                             *argv], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return proc


def _log(tmp_path, name) -> str:
    return (tmp_path / f"{name}.log").read_text()


def test_two_scheduler_processes_one_leads_and_the_other_takes_over_when_it_is_killed(tmp_path, database, store):
    """On the PostgreSQL pass the advisory lock, on the SQLite pass the file lock, between two
    real processes: `postwatch scheduler` and `postwatch serve --role scheduler`."""
    (tmp_path / "postwatch.toml").write_text(
        f'[database]\nurl = "{database.url}"\n\n[scheduler]\nlock_poll_seconds = 0.5\n')

    def finished_runs() -> int:
        with store() as s:
            return s.scalar(select(func.count()).select_from(JobRun).where(
                JobRun.trigger == "scheduler", JobRun.finished_at.is_not(None)))

    procs = {"a": _start(["scheduler"], tmp_path, "a"), "b": _start(["serve", "--role", "scheduler"], tmp_path, "b")}
    try:
        def roles():
            said = {n: _log(tmp_path, n) for n in procs}
            for name, proc in procs.items():
                assert proc.poll() is None, said[name]
            leaders = [n for n in procs if "scheduler: leader" in said[n]]
            standbys = [n for n in procs if "scheduler: standby, waiting for the lock" in said[n]]
            return (leaders, standbys) if leaders and standbys else None

        [leader], [standby] = wait_for(roles, "one leader and one standby")
        assert leader != standby
        started = wait_for(lambda: re.search(r"scheduler started with (\d+) job", _log(tmp_path, leader)),
                           "the leader's scheduler to start")
        # each runs once at start (scheduler.run_at_start), but for those not in `analyze`
        # (provider_feeds): they wait for their line
        from analysis.jobs import all_jobs
        scheduled = int(started.group(1)) - sum(1 for j in all_jobs() if not j.in_analyze)
        wait_for(lambda: finished_runs() >= scheduled, "the leader to run every job once")
        assert re.search(r"job \w+: \d+ row", _log(tmp_path, leader))
        assert not re.search(r"job \w+: \d+ row", _log(tmp_path, standby))  # the standby ran nothing
        assert finished_runs() == scheduled  # each job once, by the leader alone

        jobs = subprocess.run([sys.executable, "-m", "postwatch.cli", "--config", str(tmp_path / "postwatch.toml"),
                               "jobs"], cwd=tmp_path, capture_output=True, text=True, timeout=WAIT,
                              env={k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")})
        assert f"scheduler: leader {socket.gethostname()}:{procs[leader].pid} " in jobs.stdout, jobs.stdout

        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait()
        survivor = procs.pop(standby)
        wait_for(lambda: "scheduler: leader" in _log(tmp_path, standby), "the standby to take over")
        wait_for(lambda: finished_runs() >= 2 * scheduled, "the new leader to run the jobs")
        assert re.search(r"job \w+: \d+ row", _log(tmp_path, standby))
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(WAIT) == 0
    finally:
        for proc in [*procs.values(), locals().get("survivor")]:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
