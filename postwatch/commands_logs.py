"""`postwatch ingest-log`: sends and failures read from MTA delivery logs."""
from __future__ import annotations

import ipaddress
import json
import signal
import sys
import threading
import time

from postwatch.commands_common import open_store

FORMATS = ("postfix", "powermta", "kumomta")


def register(sub) -> None:
    p = sub.add_parser(
        "ingest-log", help="count sends and failures from MTA logs (Postfix, PowerMTA, KumoMTA)",
        description="Read MTA delivery logs: each sent line adds to the day's volume (per sending domain, "
                    "sending IP, provider and campaign, like `postwatch volume import`), each bounced or "
                    "expired line becomes a bounce event through the bounce classifier, deferred lines are "
                    "counted. The same line read twice counts once. Unreadable lines are counted and "
                    "reported, never fatal.")
    p.add_argument("files", nargs="+", metavar="FILE", help="log files (a .gz file is read decompressed)")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="postfix (mail log), powermta (accounting CSV), kumomta (JSON log records)")
    p.add_argument("--follow", action="store_true",
                   help="keep reading as the files grow, across rotation, until SIGTERM or Ctrl-C; "
                        "resumes where it stopped")
    p.add_argument("--sending-ip", metavar="IP",
                   help="the IP the MTA sends from, for logs that do not say it (Postfix)")
    p.add_argument("--timezone", metavar="ZONE", help="zone of timestamps without one (default: logs.timezone)")
    p.add_argument("--no-progress", action="store_true", help="do not print progress on standard error")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_ingest_log)


def _reader(fmt: str):
    if fmt == "postfix":
        from ingest.logs.postfix import PostfixReader
        return PostfixReader
    if fmt == "powermta":
        from ingest.logs.powermta import PowerMtaReader
        return PowerMtaReader
    from ingest.logs.kumomta import KumoReader
    return KumoReader


def cmd_ingest_log(args, config) -> int:
    from analysis.rollups import resolver_from
    from ingest.logs.files import LogIngest, options_for
    from ingest.logs.timestamps import zone
    from ingest.logs.writer import LogTotals, LogWriter

    zone_name = args.timezone or config.logs.timezone
    try:
        zone(zone_name)
    except ValueError as exc:
        print(f"postwatch: {exc}", file=sys.stderr)
        return 2
    if args.sending_ip:
        try:
            args.sending_ip = str(ipaddress.ip_address(args.sending_ip))
        except ValueError:
            print(f"postwatch: --sending-ip {args.sending_ip!r} is not an IP address (e.g. 192.0.2.17)",
                  file=sys.stderr)
            return 2
    missing = [f for f in args.files if not args.follow and not _readable(f)]
    if missing:
        for f in missing:
            print(f"postwatch: cannot read {f}: not a readable file", file=sys.stderr)
        return 2
    sessions = open_store(config)
    resolver = resolver_from(config)
    writer = LogWriter(args.format, config.ingest, providers=resolver.resolve_many)
    progress = None if args.no_progress or not sys.stderr.isatty() else _Progress()
    ingest = LogIngest(sessions, _reader(args.format), writer,
                       lambda path: options_for(path, zone=zone_name, campaign_field=config.logs.campaign_field,
                                                sending_ip=args.sending_ip),
                       progress=progress)
    totals = LogTotals()
    if args.follow:
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            print(f"following {', '.join(args.files)} ({args.format}); stop with Ctrl-C", file=sys.stderr)
            ingest.follow(args.files, stop, poll=config.logs.poll_seconds, totals=totals)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    else:
        for path in args.files:
            try:
                ingest.ingest_file(path, totals)
            except (OSError, EOFError) as exc:
                print(f"postwatch: cannot read {path}: {exc}", file=sys.stderr)
                return 2
    if progress:
        progress.done()
    _print(args, totals)
    return 0


def _readable(path: str) -> bool:
    import os

    return os.path.isfile(path) and os.access(path, os.R_OK)


def _print(args, totals) -> None:
    if args.json:
        print(json.dumps({"files": args.files, "format": args.format, **totals.as_dict()}))
        return
    for line in totals.error_lines:
        print(line, file=sys.stderr)
    if totals.errors > len(totals.error_lines):
        print(f"... and {totals.errors - len(totals.error_lines)} more unreadable line(s)", file=sys.stderr)
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(totals.reasons.items(), key=lambda x: -x[1]))
    print(f"{totals.lines:,} line(s): {totals.sent:,} sent, {totals.bounced:,} bounced"
          f"{f' ({reasons})' if reasons else ''}, {totals.complaints:,} complaint(s), {totals.deferred:,} deferred, "
          f"{totals.notifications:,} notification(s), {totals.own:,} of postwatch's own sends, "
          f"{totals.duplicates:,} counted before, {totals.reported:,} already stored from their DSN, "
          f"{totals.errors:,} unreadable. "
          "The next rollup update counts them.")


class _Progress:
    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, path: str, lines: int, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        share = f" ({done * 100 // total}%)" if total else ""
        print(f"\r{path}: {lines:,} lines{share}", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.last:
            print(file=sys.stderr)
