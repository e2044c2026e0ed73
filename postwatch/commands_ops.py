"""`postwatch analyze`, `postwatch jobs`, `postwatch scheduler`: running the analysis jobs."""
from __future__ import annotations

import dataclasses
import sys

from postwatch.commands_common import arg_date, job_context


def register(sub) -> None:
    p = sub.add_parser("analyze", help="run every analysis job once, now",
                       description="Run every analysis job once, now, in order (rollups, blocklists, "
                                   "scores, suppressions, alerts, notifications, posture, ...), print a "
                                   "line per job with the rows it wrote and how long it took, and record "
                                   "each run. A failing job is reported and the others still run; the "
                                   "exit status is 1 when one failed.")
    p.add_argument("--job", action="append", metavar="NAME",
                   help="run only this job (repeatable); `postwatch jobs` lists the names")
    p.add_argument("--since", metavar="YYYY-MM-DD", type=arg_date,
                   help="judge every day from this one to today again, in order, as if the jobs had run "
                        "on each: scores recomputed, alerts opened and resolved dated the day they judge "
                        "(days whose data changed are judged again without it)")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("jobs", help="list the analysis jobs with their schedule and last run",
                       description="Print each analysis job: its schedule, the start, duration, rows "
                                   "and error of its last run, and its next run when a scheduler has "
                                   "stored one; then which scheduler (host:pid) holds the lock and so "
                                   "runs the jobs.")
    p.add_argument("--json", action="store_true", help="one JSON object per job per line")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("scheduler", help="run the analysis jobs on their schedules, in the foreground",
                       description="Run the APScheduler scheduler in the foreground: every job on its "
                                   "interval or crontab line, one at a time, missed runs coalesced. "
                                   "Its job store is a table in the same database. Only the scheduler "
                                   "holding the store's scheduler lock runs jobs; another one waits as a "
                                   "standby and takes over when the leader dies. Stops after the "
                                   "running job on Ctrl-C or SIGTERM.")
    p.set_defaults(func=cmd_scheduler)


def cmd_analyze(args, config) -> int:
    from analysis.scheduler import run_all

    ctx = job_context(config)
    if args.since is not None:
        if args.since > ctx.clock().date():
            print(f"postwatch: --since {args.since} is after today", file=sys.stderr)
            return 2
        ctx = dataclasses.replace(ctx, since=args.since)

    def show(r) -> None:
        state = "ok" if r.error is None else f"FAILED: {r.error}"
        rows = "-" if r.rows is None else r.rows
        print(f"{r.job:<14} {rows:>8} rows {r.seconds:8.2f}s  {state}", flush=True)

    try:
        results = run_all(ctx, "analyze", only=args.job, on_result=show)
    except ValueError as exc:
        print(f"postwatch: {exc}", file=sys.stderr)
        return 2
    failed = [r.job for r in results if r.error]
    if failed:
        print(f"{len(failed)} of {len(results)} job(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_jobs(args, config) -> int:
    import json
    from datetime import timezone

    from analysis.jobs import all_jobs
    from analysis.scheduler import last_runs, leader, next_runs, schedule_text
    from store.engine import get_engine

    ctx = job_context(config)
    with ctx.sessions() as session:
        last = last_runs(session)
    upcoming = next_runs(get_engine(config.database), config.scheduler)
    rows = []
    for job in all_jobs(config):
        run = last.get(job.name)
        duration = None
        if run is not None and run.finished_at is not None:
            duration = (run.finished_at - run.started_at).total_seconds()
        rows.append({"job": job.name, "order": job.order, "schedule": schedule_text(job),
                     "description": job.description,
                     "last_start": run.started_at.strftime("%Y-%m-%d %H:%M:%S") if run else None,
                     "seconds": duration, "rows": run.rows if run else None,
                     "error": run.error if run else None,
                     "state": ("never run" if run is None else "running or interrupted" if run.finished_at is None
                               else "failed" if run.error else "ok"),
                     "next_run": (upcoming[job.name].astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
                                 if job.name in upcoming else None)})
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'job':<14} {'schedule':<12} {'last start':<20} {'seconds':>8} {'rows':>8}  {'next run':<20} state")
    for r in rows:
        secs = "-" if r["seconds"] is None else f"{r['seconds']:.2f}"
        nrows = "-" if r["rows"] is None else r["rows"]
        state = r["state"] + (f": {r['error']}" if r["error"] else "")
        print(f"{r['job']:<14} {r['schedule']:<12} {r['last_start'] or '-':<20} {secs:>8} {nrows:>8}  "
              f"{r['next_run'] or '-':<20} {state}")
    holder, lock = leader(get_engine(config.database))
    print(f"scheduler: {'leader ' + holder if holder else 'none running'} ({lock})")
    return 0


def cmd_scheduler(args, config) -> int:
    import logging
    import signal
    import threading

    from analysis.scheduler import run_forever
    from store.engine import get_engine

    if logging.getLogger().level > logging.INFO:  # a long-running process: say what it does
        logging.getLogger("analysis").setLevel(logging.INFO)
        logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)  # run_job says it better
    ctx = job_context(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("postwatch scheduler running; Ctrl-C or SIGTERM stops it after the running job", flush=True)
    run_forever(ctx, get_engine(config.database), config.scheduler, stop)
    return 0
