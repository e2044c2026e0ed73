"""`postwatch report preview` and `postwatch report send`: the e-mail digests, by hand."""
from __future__ import annotations

import sys

from postwatch.commands_common import arg_date, job_context

PERIODS = ("daily", "weekly", "monthly")  # analysis.digest.schedule.PERIODS, kept light here


def register(sub) -> None:
    p = sub.add_parser("report", help="the e-mail digests: preview one on disk, or send one now",
                       description="The scheduled digests (reports.schedules) by hand: write one to a "
                                   "folder to look at, or send one now through postwatch's sender.")
    rsub = p.add_subparsers(dest="report_command", metavar="COMMAND", required=True)
    pre = rsub.add_parser("preview", help="write a digest's HTML, text, charts and CSV files to a folder",
                          description="Make the digest of a period and write digest.html (open it in a "
                                      "browser), digest.txt, and NAME.png and NAME.csv for each chart to DIR. "
                                      "Sends nothing.")
    _common(pre)
    pre.add_argument("--out", required=True, metavar="DIR", help="the folder to write to (created when missing)")
    pre.set_defaults(func=cmd_report_preview)
    snd = rsub.add_parser("send", help="send a digest now",
                          description="Send the digest of a period now: to --to, or else to the recipients "
                                      "of every reports.schedules entry of that period (each with its scope). "
                                      "Retried reports.retries times; still failing, a report_delivery alert "
                                      "is raised and the exit status is 1. Each send is recorded as a job run.")
    _common(snd)
    snd.add_argument("--to", action="append", metavar="ADDRESS", help="send to this address (repeatable)")
    snd.set_defaults(func=cmd_report_send)


def _common(p) -> None:
    p.add_argument("--period", required=True, choices=PERIODS, help="daily, weekly or monthly")
    p.add_argument("--scope", action="append", metavar="SCOPE",
                   help="domain:DOMAIN or campaign:NAME (repeatable; default: all mail)")
    p.add_argument("--end", metavar="YYYY-MM-DD", type=arg_date,
                   help="the last day of the period (default: the day before today)")


def _scope(args):
    from analysis.digest.schedule import Scope, ScheduleError

    try:
        return Scope.parse(tuple(args.scope or ()))
    except ScheduleError as exc:
        print(f"postwatch: --scope: {exc}", file=sys.stderr)
        return None


def cmd_report_preview(args, config) -> int:
    from pathlib import Path

    from analysis.digest.delivery import prepare
    from analysis.digest.message import subject, write_preview

    scope = _scope(args)
    if scope is None:
        return 2
    ctx = job_context(config)
    rendered = prepare(ctx.sessions, config, args.period, scope, ctx.clock(), end=args.end)
    written = write_preview(rendered, Path(args.out))
    print(subject(rendered.digest))
    if not rendered.digest.has_data:
        print("no data for this period: the digest says so and draws no charts")
    for path in written:
        print(f"  {path}")
    return 0


def cmd_report_send(args, config) -> int:
    from analysis.digest.delivery import DigestError, deliver, prepare
    from analysis.digest.message import subject
    from analysis.digest.schedule import Schedule, parse_schedules
    from analysis.jobs import Job
    from analysis.scheduler import run_job

    scope = _scope(args)
    if scope is None:
        return 2
    if args.to:
        bad = [a for a in args.to if "@" not in a]
        if bad:
            print(f"postwatch: --to {bad[0]!r} is not an e-mail address", file=sys.stderr)
            return 2
        targets = [Schedule(f"report.{args.period}.now", args.period, "", "UTC", tuple(args.to), scope)]
    else:
        targets = [s for s in parse_schedules(config.reports.schedules) if s.period == args.period]
        if not targets:
            print(f"postwatch: no reports.schedules entry is {args.period}: give --to ADDRESS, or add a "
                  f"schedule to [reports]", file=sys.stderr)
            return 2
        if args.scope:
            targets = [Schedule(s.name, s.period, s.cron, s.timezone, s.recipients, scope) for s in targets]
    ctx = job_context(config)
    status = 0
    for target in targets:
        def run(job_ctx, target=target):
            rendered = prepare(job_ctx.sessions, config, target.period, target.scope, job_ctx.clock(),
                               end=args.end, timezone=target.timezone)
            print(subject(rendered.digest), flush=True)
            return deliver(job_ctx.sessions, config, rendered, target.recipients, now=job_ctx.clock(),
                           name=target.name)

        result = run_job(Job(target.name, run), ctx, "report send")
        if result.error:
            message = result.error.split(": ", 1)[1] if result.error.startswith(DigestError.__name__) else result.error
            print(f"postwatch: {message}", file=sys.stderr)
            status = 1
        else:
            print(f"  sent to {', '.join(target.recipients)}")
    return status
