"""The `postwatch` command."""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import re
import sys

from postwatch import __version__
from postwatch.config import ConfigError, load, secrets_mode_for

log = logging.getLogger("postwatch")


def _add_parse(sub) -> None:
    p = sub.add_parser("parse", help="parse feedback files and print what they are (writes nothing)",
                       description="Parse bounces, complaints, DMARC and TLS reports and print "
                                   "what each file is. Touches no store.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders, mbox files or Maildirs")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per input per line (the contract in DESIGN.md)")
    p.set_defaults(func=cmd_parse)


def _add_ingest(sub) -> None:
    p = sub.add_parser("ingest", help="store feedback files, folders, mbox files and Maildirs",
                       description="Ingest feedback into the store: each message is stored raw "
                                   "(once, by its sha256), parsed, and its events written; what "
                                   "cannot be parsed is quarantined with a reason.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders (recursive), mbox files or Maildirs")
    p.add_argument("--source", default="file", help="source label stored with each message (default: file)")
    p.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_ingest)


def _add_reprocess(sub) -> None:
    p = sub.add_parser("reprocess", help="parse the quarantined messages again",
                       description="Parse every quarantined message again (after an upgrade or a "
                                   "change to your rules file). Those that now parse get their "
                                   "events and leave quarantine; the others stay, with today's reason.")
    p.add_argument("--kind", help="only messages first seen as this kind (e.g. bounce, unknown)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_reprocess)


def _add_db(sub) -> None:
    p = sub.add_parser("db", help="database maintenance", description="Database maintenance.")
    dsub = p.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    up = dsub.add_parser("upgrade", help="create or migrate the schema to the newest version",
                         description="Create the database (if needed) and apply every migration.")
    up.set_defaults(func=cmd_db_upgrade)
    cur = dsub.add_parser("current", help="print the schema version the database is at",
                          description="Print the schema version the database is at.")
    cur.set_defaults(func=cmd_db_current)


def _add_config(sub) -> None:
    p = sub.add_parser("config", help="show the configuration in effect",
                       description="Show the configuration in effect (file, environment, defaults).")
    csub = p.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    show = csub.add_parser("show", help="print every key with its value in effect",
                           description="Print every configuration key with its value in effect.")
    show.set_defaults(func=cmd_config_show)


def _add_explain(sub) -> None:
    p = sub.add_parser("explain", help="show why each bounced recipient got its reason",
                       description="Parse bounces and show, for each recipient, what the receiver "
                                   "said and which classification rule decided the reason "
                                   "(ingest.rules_file first, then the shipped rules). Writes nothing.")
    p.add_argument("paths", nargs="+", metavar="FILE", help="bounce files, folders, mbox files or Maildirs")
    p.add_argument("--json", action="store_true", help="one JSON object per input per line")
    p.set_defaults(func=cmd_explain)


def _add_collect(sub) -> None:
    p = sub.add_parser("collect", help="receive feedback by SMTP or fetch it by IMAP",
                       description="Run a collector: it writes each message to the spool (fsync'd) "
                                   "and a spool worker stores it. Stops cleanly on Ctrl-C or SIGTERM; "
                                   "what is left in the spool is stored at the next start.")
    csub = p.add_subparsers(dest="collect_command", metavar="COMMAND", required=True)
    smtp = csub.add_parser("smtp", help="an SMTP server for the report addresses (never a relay)",
                           description="Listen on smtp.listen and accept mail for the addresses "
                                       "smtp.accept allows (550 5.1.1 for any other); answer 250 once "
                                       "the message is on disk in the spool.")
    smtp.add_argument("--listen", metavar="HOST:PORT", help="override smtp.listen")
    smtp.add_argument("--no-drain", action="store_true",
                      help="only receive into the spool; store it later with `postwatch collect drain`")
    smtp.set_defaults(func=cmd_collect_smtp)
    imap = csub.add_parser("imap", help="fetch feedback from the mailboxes in imap.mailboxes",
                           description="Fetch new messages from each mailbox by UID, store them, then "
                                       "move them to imap.processed_folder (imap.quarantine_folder when "
                                       "postwatch cannot read them). Waits with IDLE, or polls.")
    imap.add_argument("--once", action="store_true", help="fetch what is there now, then exit")
    imap.set_defaults(func=cmd_collect_imap)
    drain = csub.add_parser("drain", help="store what waits in the spool, then exit",
                            description="Ingest every message waiting in spool.dir into the store "
                                        "and print how many.")
    drain.set_defaults(func=cmd_collect_drain)


# Command groups kept in modules of their own; each has `register(subparsers)`, and keeps its
# imports inside the command functions so that start-up stays light.
COMMAND_MODULES: tuple[str, ...] = ("postwatch.commands_analysis", "postwatch.commands_suppression",
                                    "postwatch.commands_ops", "postwatch.commands_web",
                                    "postwatch.commands_sender", "postwatch.commands_serve",
                                    "postwatch.commands_demo", "postwatch.commands_reports",
                                    "postwatch.commands_doctor", "postwatch.commands_rules",
                                    "postwatch.commands_logs", "postwatch.commands_providers")


def build_parser(only_parse: bool = False) -> argparse.ArgumentParser:
    """The command line; with `only_parse`, the parse command alone (what `postwatch parse ...`
    reads: the other commands, their modules included, are not built)."""
    parser = argparse.ArgumentParser(
        prog="postwatch",
        description="Collect and understand e-mail feedback: bounces, complaints (ARF), DMARC "
                    "aggregate and failure reports, SMTP TLS reports.")
    parser.add_argument("--config", metavar="FILE",
                        help="configuration file (default: ./postwatch.toml when it exists)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("--version", action="version", version=f"postwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_parse(sub)
    if only_parse:
        return parser
    _add_ingest(sub)
    _add_reprocess(sub)
    _add_db(sub)
    _add_config(sub)
    _add_explain(sub)
    _add_collect(sub)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def iter_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every (sub)command as (("db", "upgrade"), its parser) — for the docs and --help tests."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,), sub
                yield from iter_commands(sub, prefix + (name,))


# What may come before the command for `main` to build the parse command alone: -v, -vv,
# --verbose and its abbreviations; --config FILE, --config=FILE and their abbreviations.
_VERBOSE = re.compile(r"-v+|--verb(?:o(?:se?)?)?")


def _parse_command(argv: list[str]) -> bool:
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "parse":
            return True
        if _VERBOSE.fullmatch(arg):
            i += 1
        elif arg.startswith("--c") and "--config".startswith(arg.split("=", 1)[0]):
            i += 1 if "=" in arg else 2
        else:
            return False  # anything else (--help first, another command...) gets the whole parser
    return False


# postwatch's own loggers (one per layer) and the libraries whose INFO and DEBUG lines are
# their own bookkeeping (a line per flufl.bounce detector, per alembic plugin, per SQL statement).
OWN_LOGGERS = ("store", "ingest", "sender", "analysis", "dashboard", "postwatch")
QUIET_LOGGERS = ("flufl.bounce", "alembic", "sqlalchemy", "urllib3", "werkzeug", "asyncio", "mail.log",
                 "parsedmarc", "mailparser", "matplotlib", "PIL", "imapclient", "filelock", "selenium",
                 "charset_normalizer", "dash")


def setup_logging(verbose: int) -> None:
    """No option: warnings. -v: postwatch's own DEBUG lines, libraries at INFO and the chatty
    ones at WARNING. -vv: everything."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose == 0:  # parsedmarc warns about every report's small deviations
        logging.getLogger("parsedmarc").setLevel(logging.ERROR)
    elif verbose == 1:
        for name in OWN_LOGGERS:
            logging.getLogger(name).setLevel(logging.DEBUG)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(only_parse=_parse_command(argv))
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from ingest.bounce.rules import RulesError

    try:
        config = load(args.config, secrets_mode=secrets_mode_for(args))
        return int(args.func(args, config) or 0)
    except (ConfigError, RulesError) as exc:
        print(f"postwatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("postwatch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def cmd_parse(args, config) -> int:
    from ingest.parse import prepare
    from ingest.sources import readable_inputs
    from postwatch.commands_common import report_unreadable

    prepare(config.ingest)
    out = sys.stdout
    failed: list[str] = []
    for result in _parse_all(readable_inputs(args.paths, failed), config.ingest, args.json):
        if args.json:
            out.write(result)
        else:
            _print_human(result, out)
    return report_unreadable(failed)



PARSE_CHUNK = 64  # inputs per job sent to a worker: one list out, one joined string back
PARSE_BATCH = 8  # jobs handed to the worker processes at a time (bounds memory)
# Inputs that need parsedmarc (DMARC and TLS reports) are left to the parent, so that its
# ~0.5 s import is paid once, not once per worker; but a job that holds more than this many
# is read whole by its worker (a folder of reports keeps both cores), and once the parent has
# read PARSE_REPORTS_HERE, the workers read them all.
PARSE_LEAVE_PER_JOB = 4
PARSE_REPORTS_HERE = 64

# What every input of one `parse` run is parsed with; set before the workers are forked, so
# each job sends only its inputs.
_RUN: tuple = (None, False)


def _parse_one(item) -> dict | str:
    """One input's contract object; as a JSON line when `as_json`."""
    from ingest.parse import parse_bytes

    ingest_config, as_json = _RUN
    item.load()
    if item.error is not None:
        result = {"file": item.name, "kind": "unknown", "events": [], "report": None, "error": item.error}
    else:
        result = parse_bytes(item.raw, ingest_config, detail=False).as_json(item.name)
    return json.dumps(result, default=str) + "\n" if as_json else result


def _parse_chunk(job: tuple[int, list]) -> list | str:
    """A job's results, made in a worker: JSON lines come back as one string (one pickle);
    None stands for an input left to the parent (it needs parsedmarc, not loaded here)."""
    from ingest.parsers.reports import ReportsElsewhere, reports_elsewhere

    may_leave, items = job
    reports_elsewhere(may_leave > 0)
    results, left = [], []
    for i, item in enumerate(items):
        try:
            results.append(_parse_one(item))
        except ReportsElsewhere:
            results.append(None)
            left.append(i)
    if len(left) > may_leave:  # more than the parent takes: read them here
        reports_elsewhere(False)
        for i in left:
            results[i] = _parse_one(items[i])
        left = []
    return "".join(results) if _RUN[1] and not left else results


def _parse_all(inputs, ingest_config, as_json: bool):
    """Results in input order (JSON lines a job at a time); a large run is parsed on every core."""
    import gc
    import itertools
    import multiprocessing
    import os

    global _RUN
    _RUN = (ingest_config, as_json)
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    inputs = iter(inputs)
    first = list(itertools.islice(inputs, PARSE_CHUNK))
    if workers < 2 or len(first) < PARSE_CHUNK:
        for item in itertools.chain(first, inputs):
            yield _parse_one(item)
        return
    chunks = itertools.chain([first], iter(lambda: list(itertools.islice(inputs, PARSE_CHUNK)), []))
    # What is loaded now is shared by the forked workers; kept out of the collector's scans,
    # its pages stay shared instead of being copied into each worker.
    gc.freeze()
    ctx = multiprocessing.get_context("fork")
    left_here = 0  # inputs the workers left to this process

    def hand_out(pool):
        batch = list(itertools.islice(chunks, PARSE_BATCH))
        may_leave = PARSE_LEAVE_PER_JOB if left_here < PARSE_REPORTS_HERE else 0
        return batch, pool.imap(_parse_chunk, [(may_leave, items) for items in batch]) if batch else None

    with ctx.Pool(workers) as pool:
        # The next batch is handed out before this one's results are read, so the workers
        # never wait for the slowest job of a batch (two batches at most are held).
        pending = hand_out(pool)
        while pending[1] is not None:
            following = hand_out(pool)
            for items, results in zip(*pending):
                if isinstance(results, str):
                    yield results
                    continue
                for item, result in zip(items, results):
                    if result is None:
                        left_here += 1
                        result = _parse_one(item)
                    yield result
            pending = following


def _print_human(r: dict, out) -> None:
    head = f"{r['file']}: {r['kind']}"
    if r["error"]:
        head += f" (quarantined: {r['error']})"
    out.write(head + "\n")
    for ev in r["events"]:
        if "feedback_type" in ev:
            out.write(f"  {ev.get('feedback_type')} from {ev.get('source_ip') or '?'} about "
                      f"{ev.get('recipient') or '?'}\n")
        else:
            out.write(f"  {ev.get('recipient')}: {ev.get('status')} {ev.get('reply_code') or ''} "
                      f"{ev.get('reason')} ({'hard' if ev.get('hard_bounce') else 'soft'}, "
                      f"{ev.get('category')})\n")
    if r["report"]:
        out.write("  " + ", ".join(f"{k}={v}" for k, v in r["report"].items()) + "\n")


def cmd_ingest(args, config) -> int:
    from postwatch.ingest_command import run_ingest

    return run_ingest(args, config)


def cmd_reprocess(args, config) -> int:
    from postwatch.ingest_command import run_reprocess

    return run_reprocess(args, config)


def cmd_db_upgrade(args, config) -> int:
    from store.engine import upgrade

    version = upgrade(config.database)
    print(f"database {config.database.url} is at schema version {version}")
    return 0


def cmd_db_current(args, config) -> int:
    from store.engine import current_version

    print(current_version(config.database) or "empty (run: postwatch db upgrade)")
    return 0


def cmd_config_show(args, config) -> int:
    from postwatch.config import describe

    print(f"# read from: {config.source}")
    for key, env, _default, _type in describe():
        section, name = key.split(".", 1)
        value = getattr(getattr(config, section), name)
        if key in config.generated:  # made by postwatch and kept in the secrets file
            value = f"(generated, kept in {config.secrets_file})"
        elif (("secret" in name and not name.endswith("_header")) or "password" in name or name == "salt"
              or name.endswith("tokens") or key == "snds.key") and value:  # a header's name is not a secret
            value = "(set)"
        elif key == "web.users":  # the names and roles; never a hash or a TOTP secret
            value = tuple(":".join(entry.split(":", 2)[:2]) + ":(set)" for entry in value)
        elif key == "imap.mailboxes":
            value = tuple(re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", v) for v in value)
        print(f"{key} = {value!r}    # {env}")
    return 0


def cmd_explain(args, config) -> int:
    from ingest.bounce.explain import explain, print_explanation
    from ingest.sources import readable_inputs
    from postwatch.commands_common import report_unreadable

    failed: list[str] = []
    for item in readable_inputs(args.paths, failed):
        if item.load() is None:  # gone, or unreadable, since it was listed
            failed.append(item.error)
            continue
        explained = explain(item.raw, config.ingest, config.domains)
        if args.json:
            sys.stdout.write(json.dumps({"file": item.name, **explained}, default=str) + "\n")
        else:
            print_explanation(item.name, explained, sys.stdout)
    return report_unreadable(failed)


def _collector_logging(args) -> None:
    if args.verbose == 0:  # a collector's log is its record of who sent what
        for name in ("ingest.collectors", "ingest.spool"):
            logging.getLogger(name).setLevel(logging.INFO)


def cmd_collect_smtp(args, config) -> int:
    import dataclasses

    from ingest.collectors.service import CollectorError, run_smtp

    _collector_logging(args)
    if args.listen:
        config = dataclasses.replace(config, smtp=dataclasses.replace(config.smtp, listen=args.listen))
    try:
        return run_smtp(config, drain=not args.no_drain)
    except CollectorError as exc:
        print(f"postwatch: {exc}", file=sys.stderr)
        return 2


def cmd_collect_imap(args, config) -> int:
    from ingest.collectors.service import CollectorError, run_imap

    _collector_logging(args)
    try:
        return run_imap(config, once=args.once)
    except CollectorError as exc:
        print(f"postwatch: {exc}", file=sys.stderr)
        return 2


def cmd_collect_drain(args, config) -> int:
    from ingest.collectors.service import drain_spool

    _collector_logging(args)
    n, left = drain_spool(config)
    print(f"{n} message(s) stored from {config.spool.dir}; {left} left")
    return 0 if left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
