#!/usr/bin/env python3
"""Full rollup + scoring against the incremental update.

Generates --events events (default 1,000,000) over 90 days into a fresh store (SQLite, or a
new database on BENCH_POSTGRES_URL's server with --backend postgresql) — send log rows, bounce
events (half attributed to a send), complaint events and DMARC aggregate records, written in
bulk (executemany on SQLite, COPY on PostgreSQL; the parser would take far too long) — times a
full rollup + scoring, then adds --more events (default 10,000) on the last day and times the
incremental update. Prints both and the ratio; the goal is the incremental update costing at
most 5 % of the full one. --check also rebuilds from scratch and compares the counters.

    python bench/analysis.py [--backend sqlite|postgresql] [--events 1000000] [--more 10000] [--check] [--json]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from analysis import rollups  # noqa: E402
from bench import benchlib  # noqa: E402
from bench.bulk import insert_rows, sync_ids  # noqa: E402
from analysis.providers import ProviderResolver, ProvidersConfig  # noqa: E402
from analysis.scores import ScoresConfig, score_pending  # noqa: E402

DAYS = 90
END = date(2026, 6, 30)
START = END - timedelta(days=DAYS - 1)
SHARES = {"send_log": 0.70, "bounce_events": 0.20, "complaint_events": 0.02, "dmarc_records": 0.08}
DOMAINS = ("news.example.com", "mail.example.com", "billing.example.com", "ext.example.org")
IPS = tuple(f"192.0.2.{i}" for i in range(10, 26))
RECIPIENT_DOMAINS = ("gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "aol.com", "icloud.com", "gmx.de",
                     "web.de", "orange.fr", "mail.ru", "yandex.ru", "comcast.net") + tuple(
                         f"corp{i}.example" for i in range(200))
REASONS = (("userunknown", "hygiene", 1), ("mailboxfull", "transient", 0), ("blocked", "reputation", 0),
           ("spamdetected", "content", 0), ("rejected", "policy", 0), ("undefined", "unknown", 0),
           ("hostunknown", "hygiene", 1), ("expired", "transient", 0), ("badreputation", "reputation", 0))
FEEDBACK = ("abuse", "abuse", "abuse", "not-spam", "fraud")
GOAL = 0.05


def stamp(day: date, rnd: random.Random) -> str:
    t = datetime.combine(day, datetime.min.time()) + timedelta(seconds=rnd.randrange(86400))
    return t.strftime("%Y-%m-%d %H:%M:%S.000000")


class Generator:
    def __init__(self, conn, seed: int = 5) -> None:
        self.conn = conn
        self.rnd = random.Random(seed)
        self.msg_ids: list[int] = []
        self.send_max = 0

    def messages(self, n: int) -> None:
        cur = self.conn.cursor()
        first = (cur.execute("SELECT COALESCE(MAX(id), 0) FROM inbound_messages").fetchone()[0]) + 1
        now = "2026-06-30 00:00:00.000000"
        insert_rows(self.conn, "inbound_messages", ("id", "sha256", "received_at", "source", "size", "kind", "status"),
                    [(first + i, f"{first + i:064x}", now, "bench", 1, "bounce", "parsed") for i in range(n)])
        sync_ids(self.conn, "inbound_messages")
        self.msg_ids += list(range(first, first + n))

    def campaign(self, day: date) -> str:
        return f"c{(day - START).days // 3}-{self.rnd.randrange(10)}"

    def day(self, days: tuple[date, ...]) -> date:
        return self.rnd.choice(days)

    def sends(self, n: int, days: tuple[date, ...]) -> None:
        rnd, rows = self.rnd, []
        for _ in range(n):
            d = self.day(days)
            dom = rnd.choice(RECIPIENT_DOMAINS)
            result = "sent" if rnd.random() < 0.97 else rnd.choice(("bounced", "deferred", "suppressed"))
            rows.append((stamp(d, rnd), f"u{rnd.randrange(10**7)}@{dom}", dom, rnd.choice(DOMAINS),
                         rnd.choice(IPS), self.campaign(d), rnd.choice(("warm", "main")), result))
        insert_rows(self.conn, "send_log", ("sent_at", "recipient", "recipient_domain", "sending_domain", "sending_ip",
                                            "campaign", "pool", "result"), rows)
        self.send_max = self.conn.cursor().execute("SELECT MAX(id) FROM send_log").fetchone()[0]

    def bounces(self, n: int, days: tuple[date, ...]) -> None:
        rnd, rows = self.rnd, []
        for _ in range(n):
            d = self.day(days)
            reason, category, hard = rnd.choice(REASONS)
            dom = rnd.choice(RECIPIENT_DOMAINS)
            send_id = rnd.randint(1, self.send_max) if rnd.random() < 0.5 else None
            rows.append((rnd.choice(self.msg_ids), stamp(d, rnd), f"u{rnd.randrange(10**7)}@{dom}", dom, reason,
                         bool(hard), category, rnd.choice(DOMAINS), self.campaign(d), send_id))
        insert_rows(self.conn, "bounce_events", ("message_id", "occurred_at", "recipient", "recipient_domain", "reason",
                                                 "hard", "category", "from_domain", "campaign", "send_id"), rows)

    def complaints(self, n: int, days: tuple[date, ...]) -> None:
        rnd, rows = self.rnd, []
        for _ in range(n):
            d = self.day(days)
            dom = rnd.choice(RECIPIENT_DOMAINS[:12])
            send_id = rnd.randint(1, self.send_max) if rnd.random() < 0.5 else None
            rows.append((rnd.choice(self.msg_ids), stamp(d, rnd), rnd.choice(FEEDBACK), f"u{rnd.randrange(10**7)}@{dom}",
                         dom, rnd.choice(IPS), rnd.choice(DOMAINS), send_id))
        insert_rows(self.conn, "complaint_events", ("message_id", "occurred_at", "feedback_type", "recipient",
                                                    "recipient_domain", "source_ip", "from_domain", "send_id"), rows)

    def dmarc(self, n: int, days: tuple[date, ...]) -> None:
        rnd, cur = self.rnd, self.conn.cursor()
        per_report = 20
        first = cur.execute("SELECT COALESCE(MAX(id), 0) FROM dmarc_aggregate_reports").fetchone()[0] + 1
        reports, records = [], []
        for r in range((n + per_report - 1) // per_report):
            d = self.day(days)
            dom = rnd.choice(DOMAINS)
            rid = first + r
            begin = f"{d} 00:00:00.000000"
            end = f"{d + timedelta(days=1)} 00:00:00.000000"
            org = rnd.choice(("google.com", "Yahoo", "Outlook.com", "Mail.Ru"))
            reports.append((rid, rnd.choice(self.msg_ids), org, f"bench-{rid}", dom, begin, end, per_report, 0))
            for _ in range(min(per_report, n - r * per_report)):
                kind = rnd.random()
                ip = rnd.choice(IPS) if kind < 0.85 else f"203.0.113.{rnd.randrange(256)}"
                ok = kind < 0.85 and rnd.random() < 0.98
                records.append((rid, begin, end, ip, rnd.randint(1, 500), ok, ok, ok, dom))
        insert_rows(self.conn, "dmarc_aggregate_reports", ("id", "message_id", "org_name", "report_id", "domain",
                                                           "begin", "end", "record_count", "message_count"), reports)
        sync_ids(self.conn, "dmarc_aggregate_reports")
        insert_rows(self.conn, "dmarc_records", ("report_id", "interval_begin", "interval_end", "source_ip", "count",
                                                 "dkim_aligned", "spf_aligned", "dmarc_pass", "header_from"), records)

    def events(self, total: int, days: tuple[date, ...]) -> None:
        counts = {k: int(total * v) for k, v in SHARES.items()}
        counts["send_log"] += total - sum(counts.values())
        self.sends(counts["send_log"], days)
        self.bounces(counts["bounce_events"], days)
        self.complaints(counts["complaint_events"], days)
        self.dmarc(counts["dmarc_records"], days)
        self.conn.commit()


def run_update(sessions, now: datetime, rebuild: bool = False) -> tuple[float, int, int]:
    providers = ProviderResolver(ProvidersConfig(mx_lookups=False))
    t0 = time.perf_counter()
    with sessions() as session, session.begin():
        fn = rollups.rebuild if rebuild else rollups.update
        changed = fn(session, now=now, providers=providers)
    with sessions() as session, session.begin():
        scored = score_pending(session, now=now, config=ScoresConfig())
    return time.perf_counter() - t0, changed, scored


def counters(sessions) -> dict:
    from sqlalchemy import select

    from store.rollups import Rollup
    with sessions() as session:
        return {(r.day, r.dimension, r.key, r.metric): r.value for r in session.scalars(select(Rollup)) if r.value}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--more", type=int, default=10_000)
    ap.add_argument("--check", action="store_true", help="also rebuild from scratch and compare the counters")
    ap.add_argument("--json", action="store_true")
    benchlib.add_backend_argument(ap)
    args = ap.parse_args()

    from store.config import DatabaseConfig
    from store.engine import get_engine, session_factory, upgrade

    with benchlib.database_url(args.backend) as url:
        db = DatabaseConfig(url=url)
        upgrade(db)
        sessions = session_factory(db)
        raw = get_engine(db).raw_connection()
        try:
            gen = Generator(raw.driver_connection)
            gen.messages(2000)
            all_days = tuple(START + timedelta(days=i) for i in range(DAYS))
            t0 = time.perf_counter()
            gen.events(args.events, all_days)
            generated = time.perf_counter() - t0
            if args.backend == "postgresql":  # what autovacuum would have done by now in a live store
                raw.driver_connection.cursor().execute("ANALYZE")
                raw.driver_connection.commit()
            now = datetime.combine(END + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
            full, full_rows, full_scores = run_update(sessions, now)
            gen.events(args.more, (END,))
            incr, incr_rows, incr_scores = run_update(sessions, now)
        finally:
            raw.close()
        result = {"backend": args.backend, "events": args.events, "days": DAYS, "generate_s": round(generated, 2),
                  "full_s": round(full, 3), "full_rollup_rows": full_rows, "full_scores": full_scores,
                  "added": args.more, "incremental_s": round(incr, 3), "incremental_rollup_rows": incr_rows,
                  "incremental_scores": incr_scores, "ratio": round(incr / full, 4), "goal": GOAL}
        if args.check:
            incremental = counters(sessions)
            rebuild_s, _, _ = run_update(sessions, now, rebuild=True)
            result["rebuild_s"] = round(rebuild_s, 3)
            result["incremental_equals_rebuild"] = incremental == counters(sessions)
    ratio = incr / full
    if args.json:
        print(json.dumps(result))
    else:
        print(f"generated {args.events:,} events over {DAYS} days in {generated:.1f} s ({args.backend})")
        print(f"full rollup + scoring:        {full:8.3f} s  ({full_rows:,} rollup rows, {full_scores:,} scores)")
        print(f"incremental (+{args.more:,} events):  {incr:8.3f} s  ({incr_rows:,} rollup rows, "
              f"{incr_scores:,} scores)")
        print(f"ratio: {ratio:.2%} of the full run (goal: at most {GOAL:.0%})")
        if args.check:
            print(f"rebuild from scratch: {result['rebuild_s']:.3f} s; incremental equals rebuild: "
                  f"{result['incremental_equals_rebuild']}")
    benchlib.report("analysis", args.backend, "incremental ÷ full", round(ratio * 100, 2), "%", f"≤ {GOAL:.0%}",
                    ratio <= GOAL, f"+{args.more:,} events on {args.events:,}")
    benchlib.report("analysis", args.backend, "full rollup + scoring", round(full, 2), "s", "", None,
                    f"{args.events:,} events over {DAYS} days")
    benchlib.report("analysis", args.backend, "incremental update", round(incr, 3), "s", "", None,
                    f"+{args.more:,} events")
    return 0 if result.get("incremental_equals_rebuild", True) else 1

if __name__ == "__main__":
    sys.exit(main())
