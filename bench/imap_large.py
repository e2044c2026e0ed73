"""The IMAP collector on a large mailbox: rate and peak memory.

Starts a private Dovecot (as the tests do), drops N feedback messages into its Maildir,
then runs one pass of the collector (fetch by UID in batches, spool, store, move) into a
fresh store (SQLite, or a new database on BENCH_POSTGRES_URL's server with --backend
postgresql). Prints messages/s and the peak RSS, which should stay flat as N grows.

    python bench/imap_large.py [N] [--backend sqlite|postgresql]      (N: 100000 by default)
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/, whose ingest.py would hide the package

from bench import benchlib  # noqa: E402
from tests.ingest.collectors.servers import NOBODY, start_dovecot  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=100_000, help="messages in the mailbox")
    benchlib.add_backend_argument(ap)
    args = ap.parse_args()
    n = args.n
    from ingest.collectors.imap import IMAPCollector, StateFile, parse_mailbox
    from ingest.config import IMAPConfig
    from ingest.pipeline import Pipeline
    from ingest.spool import Spool
    from ingest.spool_worker import SpoolWorker
    from store.config import DatabaseConfig
    from sqlalchemy import func, select

    from store.engine import session_factory, upgrade
    from store.models import InboundMessage

    dovecot = start_dovecot()
    try:
        new = dovecot.maildir / "new"
        t0 = time.monotonic()
        for i in range(n):
            p = new / f"{i}.bench"
            p.write_bytes(b"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces+u%d=example.net@send.example.com\r\n"
                          b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b%d@mx>\r\n\r\n"
                          b"<u%d@example.net>: host mx.example.net said: 550 5.1.1 User unknown\r\n" % (i, i, i))
            os.chown(p, NOBODY, NOBODY)
        print(f"{n} messages dropped into the Maildir in {time.monotonic() - t0:.1f}s", flush=True)
        with tempfile.TemporaryDirectory(prefix="pw-imap-bench-") as tmp, benchlib.database_url(args.backend) as url:
            work = Path(tmp)
            db = DatabaseConfig(url=url)
            upgrade(db)
            spool = Spool(work / "spool")
            worker = SpoolWorker(spool, Pipeline(session_factory(db)), batch_size=500)
            collector = IMAPCollector(parse_mailbox(dovecot.url(tls=True)),
                                      IMAPConfig(ca_file=str(dovecot.cert), batch_size=500, timeout_seconds=600),
                                      spool, worker.store_files, StateFile(work / "state.json"), 1 << 24)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t0 = time.monotonic()
            collector.run(once=True)
            secs = time.monotonic() - t0
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            with session_factory(db)() as session:
                stored = session.scalar(select(func.count()).select_from(InboundMessage))
    finally:
        dovecot.stop()
    rate = collector.fetched / secs
    print(f"IMAP collector ({args.backend}): {collector.fetched} messages in {secs:.1f}s = {rate:.0f} msg/s "
          f"(fetch, spool with fsync, store, move), {stored} stored; peak RSS {peak / 1024:.0f} MB "
          f"({before / 1024:.0f} MB before the pass)")
    benchlib.report("imap_large", args.backend, "IMAP collector rate", round(rate), "msg/s", "", None,
                    f"{n:,} messages, one pass")
    benchlib.report("imap_large", args.backend, "IMAP collector peak RSS", round(peak / 1024), "MB", "", None,
                    f"{before / 1024:.0f} MB before the pass; stays flat as N grows")
    return 0 if collector.fetched == n and stored == n else 1

if __name__ == "__main__":
    sys.exit(main())
