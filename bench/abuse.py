#!/usr/bin/env python3
"""The collectors under abuse: what hostile clients get, whether others are still served,
and whether anything answered `250` is lost.

SMTP: one `postwatch collect smtp` (its acceptor processes and spool worker, on a store of
--backend) with the limits below, and phase after phase of hostile clients (asyncio, in a
process of their own; tests/ingest/collectors/abuse.py): sessions over the per-client limit,
messages over the per-minute limit, slow-loris clients (one byte every few seconds, in a
command and in a message) beside 200 busy sessions, 1,000 connections at once (from one
address, and from 100), 60 MB messages (plain, with BODY=8BITMIME, with SIZE declared)
beside 50 sessions, messages with bare LF, NUL bytes and long lines, pipelined bursts.
Throughout, a probe (tests/ingest/collectors/probe.py: another process, from 127.0.0.2)
opens a session every 0.2 s and sends a message, timing every reply; each phase prints its
verdict and the probe's worst wait (the requirement: every answer within 1 s). At the end the collector is stopped, the
spool drained, and the messages answered `250` are looked up in the store by SHA-256.

IMAP: a private Dovecot with --imap-n messages (the corpus's bounces, complaints,
auto-replies and reports, each made unique by one header; 1 % notes that are not feedback,
1 % bounces with NUL and 8-bit bytes), --imap-big of them ~50 MB bounces returning an
attachment, together, and two over ingest.max_message_bytes; one `postwatch collect imap
--once` pass. Prints messages per second, its peak RSS, and where every message went:
stored (parsed, ignored, quarantined with a reason) or moved unread to the quarantine folder.

    python bench/abuse.py [--backend sqlite|postgresql] [--quick] [--no-imap] [--imap-n N] [--imap-big N]
"""
from __future__ import annotations

import argparse
import base64
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/, whose ingest.py would hide the package

from bench import benchlib  # noqa: E402
from tests.ingest.collectors.abuse import (Collector, big_message, open_many, rate, run_apart, sessions,  # noqa: E402
                                           slow_loris, sources, together)
from tests.ingest.collectors.probe import Probe  # noqa: E402

LIMITS = {"processes": "2", "sessions_per_ip": "50", "messages_per_minute": "1000", "max_sessions": "500",
          "command_timeout": "5", "data_timeout": "10"}
ONE_SECOND = 1.0  # the requirement: every client is answered within this


class Phases:
    """The SMTP phases' verdicts and the probe's worst wait in each."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.acked: list[str] = []
        self.worst = 0.0
        self.probe_refused: Counter = Counter()
        self.probe_failures: list[str] = []
        self.problems: list[str] = []

    def run(self, name: str, scenario, *args, full: bool = False):
        """The scenario in a client process, the probe beside it; its result. With `full`, the
        scenario takes every one of smtp.max_sessions: the probe's 421 then is the answer due."""
        with Probe(self.collector.port) as probe:
            time.sleep(0.3)
            started = time.monotonic()
            result = run_apart(scenario, *args).result(timeout=600)
            secs = time.monotonic() - started
            report = probe.stop()
        self.acked += report.acked
        self.worst = max(self.worst, report.worst)
        if not full:
            self.probe_refused.update(report.refused)
        self.probe_failures += report.failures
        self.current = (name, secs, report, full)
        return result

    def say(self, verdict: str, ok: bool) -> None:
        name, secs, report, full = self.current
        extra = ""
        if report.refused or report.failures:
            extra = f"; probe refused {dict(report.refused)}, failed {len(report.failures)}"
            if full:
                extra += " (while every place was taken: the answer due)"
        print(f"  {name:<44} {verdict}\n  {'':<44} {secs:.1f} s; probe: {report.rounds} sessions, worst reply "
              f"{report.worst * 1000:.0f} ms ({report.worst_step}){extra}", flush=True)
        if not ok:
            self.problems.append(f"{name}: {verdict}")


def smtp_part(url: str, work: Path, quick: bool) -> dict:
    limits = {**LIMITS, "messages_per_minute": "100"} if quick else dict(LIMITS)
    collector = Collector(work, url, limits).start()
    per_ip, per_minute = int(limits["sessions_per_ip"]), int(limits["messages_per_minute"])
    max_sessions = int(limits["max_sessions"])
    print(f"SMTP collector: {', '.join(f'smtp.{k} = {v}' for k, v in limits.items())}; "
          "smtp.max_message_bytes = 25 MB (the default)", flush=True)
    p = Phases(collector)
    try:
        load = p.run("sessions over smtp.sessions_per_ip", open_many, collector.port, per_ip + 10, ["127.0.0.3"])
        p.say(f"{per_ip + 10} at once from one address: {_codes(load.greetings)} ({_note(load)})",
              load.greetings == Counter({220: per_ip, 421: 10}))

        count = per_minute + 50
        load = p.run("messages over smtp.messages_per_minute", rate, collector.port, "127.0.0.4", count, "rate")
        p.acked += load.acked
        p.say(f"{count} messages from one address, a session each: data {_codes(load.replies)}",
              load.replies == Counter({250: per_minute, 421: count - per_minute}))

        lorises, busy, each = (50, 200, 20) if not quick else (10, 50, 5)
        cmd_t, data_t = float(limits["command_timeout"]), float(limits["data_timeout"])
        cmd, dat, load = p.run("slow loris beside busy sessions", together,
                               (slow_loris, (collector.port, lorises, "command", 2.0, 3 * cmd_t, "127.0.0.5")),
                               (slow_loris, (collector.port, lorises, "data", 2.0, 3 * data_t, "127.0.0.6")),
                               (sessions, (collector.port, busy, each, sources(20), "busy")))
        p.acked += load.acked
        cut_cmd = [t for t in cmd.cut_after if t is not None]
        cut_data = [t for t in dat.cut_after if t is not None]
        p.say(f"{lorises} in a command + {lorises} in a message, a byte every 2 s: cut after "
              f"{_span(cut_cmd)} s (command_timeout {cmd_t:.0f} s) and {_span(cut_data)} s (data_timeout "
              f"{data_t:.0f} s); {busy} sessions x {each} messages meanwhile: data {_codes(load.replies)}",
              len(cut_cmd) == lorises and len(cut_data) == lorises and set(load.replies) == {250})

        load = p.run("1,000 connections at once, one address", open_many, collector.port, 1000, ["127.0.0.1"])
        p.say(f"greetings {_codes(load.greetings)} ({_note(load)})",
              load.greetings == Counter({220: per_ip, 421: 1000 - per_ip}))
        load = p.run("1,000 connections at once, 100 addresses", open_many, collector.port, 1000, sources(100, 101),
                     full=True)
        # the probe's own session may hold one of the max_sessions places meanwhile
        p.say(f"greetings {_codes(load.greetings)} ({_note(load)}; smtp.max_sessions {max_sessions})",
              load.greetings[220] in (max_sessions, max_sessions - 1) and load.greetings[220] + load.greetings[421] == 1000)

        size = 60 << 20 if not quick else 30 << 20
        plain, body, declared, load = p.run(
            f"{size >> 20} MB messages beside 50 sessions", together,
            (big_message, (collector.port, size, "127.0.0.7", "big", "plain")),
            (big_message, (collector.port, size, "127.0.0.8", "big", "body")),
            (big_message, (collector.port, size, "127.0.0.9", "big", "size")),
            (sessions, (collector.port, 50, 10, sources(5, 201), "beside")))
        p.acked += load.acked + plain.acked + body.acked + declared.acked
        p.say("; ".join(f"{b.how}: {b.reply}, then a small message on it: {b.after or 'closed'}"
                        for b in (plain, body, declared)) + f"; beside: data {_codes(load.replies)}",
              all(b.reply == 552 for b in (plain, body, declared)) and set(load.replies) == {250})

        load = p.run("bare LF, NUL, long lines; pipelined bursts", sessions, collector.port, 100, 10,
                     sources(10, 211), "odd", ("bare_lf", "nul", "long", "plain"), 50)
        p.acked += load.acked
        p.say(f"100 sessions x 10 messages, 50 of them pipelined whole: data {_codes(load.replies)}",
              load.replies == Counter({250: 1000}))
    finally:
        status = collector.stop()
    stored = set(collector.stored())
    lost = [h for h in p.acked if h not in stored]
    print(f"  stopped (status {status}); messages answered 250: {len(p.acked)}; stored: {len(stored)}; "
          f"lost: {len(lost)}", flush=True)
    print(f"SMTP verdict: worst probe reply {p.worst * 1000:.0f} ms (requirement: under {ONE_SECOND * 1000:.0f} ms); "
          f"probe refused {sum(p.probe_refused.values())}, no answer {len(p.probe_failures)}; "
          f"{len(lost)} lost; {len(p.problems)} phase(s) not as expected", flush=True)
    for line in p.problems + p.probe_failures[:5] + [f"probe refused: {k} x{n}" for k, n in p.probe_refused.items()]:
        print(f"  ! {line}")
    return {"worst": p.worst, "lost": len(lost), "acked": len(p.acked), "problems": len(p.problems)}


def _codes(counter: Counter) -> str:
    return ", ".join(f"{n} x {code}" for code, n in sorted(counter.items(), key=lambda kv: str(kv[0])))


def _note(load) -> str:
    return load.notes[0] if load.notes else "-"


def _span(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}" if values else "never"


# -- IMAP ------------------------------------------------------------------------------------

def big_bounce(i: int, attachment: bytes) -> bytes:
    """A DSN returning the original message whole, with its attachment (base64)."""
    return (b"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces+big%d=example.net@send.example.com\r\n"
            b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <big-%d@mx.example.net>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            b"--B\r\nContent-Type: text/plain\r\n\r\n<big%d@example.net>: host mx.example.net said: 552 5.3.4 "
            b"Message size exceeds fixed limit\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; big%d@example.net\r\n"
            b"Action: failed\r\nStatus: 5.3.4\r\nDiagnostic-Code: smtp; 552 5.3.4 Message size exceeds fixed limit\r\n"
            b"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: news@send.example.com\r\nTo: big%d@example.net\r\n"
            b"Subject: the report you asked for\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"C\"\r\n"
            b"\r\n--C\r\nContent-Type: text/plain\r\n\r\nattached\r\n--C\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" % (i, i, i, i, i)) + attachment + b"\r\n--C--\r\n\r\n--B--\r\n"


def imap_part(url: str, work: Path, n: int, big: int, big_mb: int, limit_mb: int) -> dict:
    from sqlalchemy import create_engine, text

    from tests.ingest.collectors.servers import NOBODY, start_dovecot

    corpus = ROOT.parent / "shared" / "corpus"
    base = [raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            for _kind, raw in benchlib.corpus_mail(corpus)] if corpus.is_dir() else []
    if not base:
        from tests.ingest.messages import postfix_dsn, vacation_reply

        base = [postfix_dsn().replace(b"\n", b"\r\n"), vacation_reply().replace(b"\n", b"\r\n")]
    rng = random.Random(7)
    blob = base64.encodebytes(rng.randbytes(big_mb * 3 * (1 << 20) // 4)).replace(b"\n", b"\r\n")
    over = base64.encodebytes(rng.randbytes((limit_mb + 8) * 3 * (1 << 20) // 4)).replace(b"\n", b"\r\n")
    dovecot = start_dovecot()
    try:
        new = dovecot.maildir / "new"
        # together, as the bounces of one large mailing arrive: one fetch batch holds them all
        first = rng.randrange(n - big - 2)
        big_at = set(range(first, first + big + 2))
        over_at = {first, first + big + 1}
        t0 = time.monotonic()
        for i in range(n):
            if i in big_at:
                raw = big_bounce(i, over if i in over_at else blob)
            elif i % 100 == 1:  # not feedback: quarantined with a reason
                raw = b"From: someone@example.org\r\nSubject: hello %d\r\n\r\njust a note\r\n" % i
            elif i % 100 == 2:  # NUL bytes and 8-bit bytes in a bounce
                raw = (b"X-Abuse-Copy: %d\r\nFrom: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered \xe9\x00\r\n"
                       b"\r\n<u%d@example.net>: host mx.example.net said: 550 5.1.1 User\x00unknown \xff\r\n" % (i, i))
            else:
                raw = b"X-Abuse-Copy: %d\r\n" % i + base[i % len(base)]
            path = new / f"{i:06d}.abuse"
            path.write_bytes(raw)
            os.chown(path, NOBODY, NOBODY)
        print(f"IMAP: {n:,} messages in the mailbox ({big} of {big_mb} MB, 2 of {limit_mb + 8} MB over "
              f"ingest.max_message_bytes = {limit_mb} MB), written in {time.monotonic() - t0:.1f} s", flush=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
        env.update(POSTWATCH_DATABASE__URL=url, POSTWATCH_IMAP__MAILBOXES=dovecot.url(tls=True),
                   POSTWATCH_IMAP__CA_FILE=str(dovecot.cert), POSTWATCH_IMAP__TIMEOUT_SECONDS="600",
                   POSTWATCH_INGEST__MAX_MESSAGE_BYTES=str(limit_mb << 20))
        log = open(work / "imap.log", "wb")
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "postwatch.cli", "collect", "imap", "--once"], cwd=work,
                                env=env, stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        secs = time.monotonic() - t0
        engine = create_engine(url)
        with engine.connect() as conn:
            by_status = dict(conn.execute(text("select status, count(*) from inbound_messages group by status")).all())
            reasons = Counter(r[0].splitlines()[0][:70] for r in conn.execute(
                text("select error from inbound_messages where status = 'quarantined'")) if r[0])
            no_reason = conn.execute(text("select count(*) from inbound_messages where status = 'quarantined' "
                                          "and (error is null or error = '')")).scalar()
        engine.dispose()
        folders = {f: len(dovecot.folder_files(f)) for f in ("INBOX", "Processed", "Quarantine")}
    finally:
        dovecot.stop()
    stored = sum(by_status.values())
    unread = sum(1 for line in (work / "imap.log").read_text(errors="replace").splitlines()
                 if "over ingest.max_message_bytes" in line)
    peak = usage.ru_maxrss / 1024
    rate_ = n / secs
    print(f"  collect imap --once: exit {proc.returncode}, {secs:.1f} s = {rate_:.0f} msg/s; peak RSS {peak:.0f} MB",
          flush=True)
    print(f"  stored {stored:,}: {', '.join(f'{k} {v:,}' for k, v in sorted(by_status.items()))} "
          f"(quarantined without a reason: {no_reason}); moved unread to the quarantine folder (over "
          f"ingest.max_message_bytes, said in the log): {unread}", flush=True)
    for reason, count in reasons.most_common(5):
        print(f"    quarantined {count:>5} x {reason}")
    print(f"  IMAP folders after: {folders}", flush=True)
    accounted = stored + unread == n and folders["INBOX"] == 0 and no_reason == 0 and proc.returncode == 0
    print(f"IMAP verdict: every message stored or quarantined with a reason: {'yes' if accounted else 'NO'}", flush=True)
    return {"rate": rate_, "peak": peak, "accounted": accounted}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    benchlib.add_backend_argument(ap)
    ap.add_argument("--quick", action="store_true", help="small sizes: checks that it runs")
    ap.add_argument("--no-imap", action="store_true", help="the SMTP phases only")
    ap.add_argument("--imap-n", type=int, default=10_000, help="messages in the mailbox (default 10000)")
    ap.add_argument("--imap-big", type=int, default=10, help="~50 MB messages among them (default 10)")
    args = ap.parse_args()
    if args.quick:
        args.imap_n, args.imap_big = 300, 2
    big_mb, limit_mb = (50, 64) if not args.quick else (20, 24)
    with tempfile.TemporaryDirectory(prefix="pw-abuse-") as tmp, benchlib.database_url(args.backend) as url:
        smtp = smtp_part(url, Path(tmp), args.quick)
    benchlib.report("abuse", args.backend, "SMTP: worst probe reply under abuse", round(smtp["worst"] * 1000), "ms",
                    "< 1000 ms", smtp["worst"] < ONE_SECOND, "a session every 0.2 s from another address")
    benchlib.report("abuse", args.backend, "SMTP: messages answered 250 and lost", smtp["lost"], "", "0",
                    smtp["lost"] == 0, f"of {smtp['acked']:,}; {smtp['problems']} phase(s) not as expected")
    ok = smtp["worst"] < ONE_SECOND and smtp["lost"] == 0 and smtp["problems"] == 0
    if not args.no_imap:
        with tempfile.TemporaryDirectory(prefix="pw-abuse-imap-") as tmp, benchlib.database_url(args.backend) as url:
            imap = imap_part(url, Path(tmp), args.imap_n, args.imap_big, big_mb, limit_mb)
        detail = f"{args.imap_n:,} messages, {args.imap_big} of {big_mb} MB"
        benchlib.report("abuse", args.backend, "IMAP: rate with large messages", round(imap["rate"]), "msg/s", "",
                        None, detail)
        benchlib.report("abuse", args.backend, "IMAP: peak RSS", round(imap["peak"]), "MB", "", None, detail)
        benchlib.report("abuse", args.backend, "IMAP: every message stored or quarantined", int(imap["accounted"]),
                        "", "1", imap["accounted"], detail)
        ok = ok and imap["accounted"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
