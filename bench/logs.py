#!/usr/bin/env python3
"""Postfix log lines ingested per second by `postwatch ingest-log`.

A realistic mail log is generated (the same bytes every run): per message, smtpd's connect /
client / disconnect lines, cleanup's message-id and the logged campaign header, qmgr's
from= and removed lines, and one result per recipient (1-3 recipients; 94% sent, 4%
bounced with real receivers' wordings, 2% deferred) over a dozen recipient domains. The
command reads it into a fresh store (SQLite, or a new database on BENCH_POSTGRES_URL's
server with --backend postgresql), start-up included; the figure is lines read per second
of its wall time. The counts it prints are checked against what was generated.
Goal: >= 50,000 lines/s.

    python bench/logs.py [--backend sqlite|postgresql] [--lines N]    (N=500000 by default)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from bench import benchlib  # noqa: E402

GOAL = 50_000
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "aol.com", "icloud.com", "gmx.de",
           "web.de", "orange.fr", "example.net", "example.org", "mail.example.com")
BOUNCES = (
    ("5.1.1", "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking "
              "the recipient's email address for typos or unnecessary spaces. (in reply to RCPT TO command)"),
    ("5.7.1", "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.17, because the ip is in "
              "Spamhaus's list; see http://postmaster.yahoo.com/errors/550-bl23.html (in reply to MAIL FROM command)"),
    ("5.2.2", "552 5.2.2 <{rcpt}>: Mailbox full (in reply to RCPT TO command)"),
    ("5.1.1", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table "
              "(in reply to RCPT TO command)"),
)
DEFERRALS = ("451 4.7.650 The mail server [192.0.2.17] has been temporarily rate limited due to IP reputation. "
             "(in reply to MAIL FROM command)", "421 4.7.0 [TSS04] Messages from 192.0.2.17 temporarily deferred "
             "due to unexpected volume or user complaints (in reply to MAIL FROM command)")


def generate(path: Path, lines: int) -> dict[str, int]:
    """Write about `lines` lines; returns the results written."""
    rnd = random.Random(7)
    counts = {"lines": 0, "sent": 0, "bounced": 0, "deferred": 0}
    n = 0
    t0 = 6 * 86400
    with open(path, "w") as f:
        while counts["lines"] < lines:
            n += 1
            qid = f"{n:010X}"
            sec = t0 + n // 40
            stamp = time.strftime("Dec %d %H:%M:%S", time.gmtime(sec)).replace("Dec 0", "Dec  ")
            pid = 1000 + n % 5000
            out = [f"{stamp} mail postfix/smtpd[{pid}]: connect from app{n % 7}.example.com[192.0.2.{40 + n % 7}]",
                   f"{stamp} mail postfix/smtpd[{pid}]: {qid}: client=app{n % 7}.example.com[192.0.2.{40 + n % 7}]",
                   f"{stamp} mail postfix/cleanup[{pid + 1}]: {qid}: info: header X-Campaign: campaign-{n % 23} from "
                   f"app{n % 7}.example.com[192.0.2.{40 + n % 7}]; from=<news@mail.example.com> to=<u@x> proto=ESMTP "
                   f"helo=<app{n % 7}.example.com>",
                   f"{stamp} mail postfix/cleanup[{pid + 1}]: {qid}: message-id=<{n}.{qid}@mail.example.com>",
                   f"{stamp} mail postfix/qmgr[900]: {qid}: from=<news@mail.example.com>, size={2000 + n % 9000}, "
                   f"nrcpt={1 + n % 3} (queue active)",
                   f"{stamp} mail postfix/smtpd[{pid}]: disconnect from app{n % 7}.example.com[192.0.2.{40 + n % 7}] "
                   "ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"]
            for r in range(1 + n % 3):
                domain = DOMAINS[rnd.randrange(len(DOMAINS))]
                rcpt = f"user{n}.{r}@{domain}"
                relay = f"mx{r}.{domain}[198.51.100.{n % 250}]:25"
                head = (f"{stamp} mail postfix/smtp[{pid + 2}]: {qid}: to=<{rcpt}>, relay={relay}, delay=1.2, "
                        "delays=0.1/0/0.5/0.6, ")
                roll = rnd.random()
                if roll < 0.04:
                    status, text = BOUNCES[rnd.randrange(len(BOUNCES))]
                    out.append(f"{head}dsn={status}, status=bounced (host {relay[:-3]} said: {text.format(rcpt=rcpt)})")
                    counts["bounced"] += 1
                elif roll < 0.06:
                    out.append(f"{head}dsn=4.7.0, status=deferred (host {relay[:-3]} said: "
                               f"{DEFERRALS[rnd.randrange(2)]})")
                    counts["deferred"] += 1
                else:
                    out.append(f"{head}dsn=2.0.0, status=sent (250 2.0.0 OK {sec} {qid.lower()} - gsmtp)")
                    counts["sent"] += 1
            out.append(f"{stamp} mail postfix/qmgr[900]: {qid}: removed")
            f.write("\n".join(out) + "\n")
            counts["lines"] += len(out)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    benchlib.add_backend_argument(ap)
    ap.add_argument("--lines", type=int, default=500_000, help="lines of log to generate (default 500000)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "maillog"
        made = generate(log, args.lines)
        size = log.stat().st_size
        with benchlib.database_url(args.backend) as url:
            env = {**os.environ, "POSTWATCH_DATABASE__URL": url, "POSTWATCH_PROVIDERS__MX_LOOKUPS": "false"}
            # the schema first, so that the timed run reads and writes only
            subprocess.run([sys.executable, "-m", "postwatch.cli", "db", "upgrade"], env=env, cwd=tmp, check=True,
                           capture_output=True)
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "postwatch.cli", "ingest-log", str(log), "--format",
                                   "postfix", "--sending-ip", "192.0.2.17", "--no-progress", "--json"],
                                  env=env, cwd=tmp, capture_output=True, text=True)
            elapsed = time.perf_counter() - t
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    got = json.loads(done.stdout)
    rate = got["lines"] / elapsed
    print(f"log: {made['lines']:,} lines ({size / 1e6:.1f} MB): {made['sent']:,} sent, {made['bounced']:,} bounced, "
          f"{made['deferred']:,} deferred")
    print(f"ingest-log ({args.backend}): {got['lines']:,} lines in {elapsed:.2f} s = {rate:,.0f} lines/s "
          f"(goal >= {GOAL:,}/s) {'OK' if rate >= GOAL else 'UNDER'}; reasons {got['reasons']}")
    benchlib.report("logs", args.backend, "Postfix log lines per second", round(rate), "lines/s", f"≥ {GOAL:,}/s",
                    rate >= GOAL, f"{made['lines']:,} lines, start-up included")
    wanted = (made["lines"], made["sent"], made["bounced"], made["deferred"], 0)
    if (got["lines"], got["sent"], got["bounced"], got["deferred"], got["errors"]) != wanted:
        print(f"WRONG: read {got}, expected lines/sent/bounced/deferred/errors {wanted}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
