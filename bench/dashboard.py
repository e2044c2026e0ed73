#!/usr/bin/env python3
"""Dashboard callbacks against a store of --events events (default 10,000,000).

Fills a SQLite store with bulk-generated rows (SQL, not the parser: 10 million DSNs would take
hours) over 90 days — bounce events (95 %) and complaint events (5 %), daily imported volume,
DMARC aggregate records, TLS reports, suppressions, alerts — builds the rollups, the DMARC
sources and the scores with the analysis' own functions, then calls every callback function
of every page --runs times (default 20) with filters that change from run to run, and prints
p50 and p95 per callback and per page. Goal: p95 <= 300 ms for every callback.

The store is kept at --db (default var/bench-dashboard.db) and reused when it already holds
the same number of events, so a second run times the callbacks only.

    python bench/dashboard.py [--events 10000000] [--runs 20] [--db PATH] [--fresh] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

DAYS = 90
END = date(2026, 6, 30)
START = END - timedelta(days=DAYS - 1)
NOW = datetime.combine(END, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=23)
DOMAINS = ("news.example.com", "mail.example.net")
IPS = tuple(f"192.0.2.{i}" for i in range(10, 16)) + tuple(f"198.51.100.{i}" for i in range(20, 24))
PROVIDERS = (("gmail.com", "google"), ("outlook.com", "microsoft"), ("yahoo.com", "yahoo"), ("icloud.com", "apple"),
             ("corp.example", "other"))
CAMPAIGNS = tuple(f"campaign-{i:02d}" for i in range(24))
REASONS = (("userunknown", "hygiene", 1, "5.1.1", "550 5.1.1 user unknown"),
           ("mailboxfull", "transient", 0, "4.2.2", "452 4.2.2 mailbox full"),
           ("blocked", "reputation", 0, "5.7.1", "550 5.7.1 messages from [IP] were not sent (S3150)"),
           ("spamdetected", "content", 0, "5.7.1", "554 5.7.1 message rejected as spam"),
           ("expired", "transient", 0, "4.4.7", "delivery time expired"),
           ("hostunknown", "hygiene", 1, "5.1.2", "host not found"))
SENT_PER_EVENT = 20  # imported volume: 20 sends per bounce or complaint


def _sql_list(values) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def fill(db: Path, events: int) -> dict[str, float]:
    """Bulk rows, then rollups, DMARC sources and scores through the analysis."""
    from sqlalchemy import text

    from analysis.dmarc_intel import update_sources
    from analysis.providers import ProviderResolver, ProvidersConfig
    from analysis.rollups import update
    from analysis.scores import score_pending
    from store.config import DatabaseConfig
    from store.engine import get_engine, session_factory, upgrade
    from store.models import BounceEvent, ComplaintEvent

    config = DatabaseConfig(url=f"sqlite:///{db}")
    upgrade(config)
    engine = get_engine(config)
    sessions = session_factory(config)
    figures = {}
    n_bounces, n_complaints = int(events * 0.95), events - int(events * 0.95)
    seconds = DAYS * 86400
    t0 = time.monotonic()
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA cache_size=-400000")
        conn.exec_driver_sql(
            "INSERT INTO inbound_messages (id, sha256, received_at, source, size, kind, status, raw_zlib) VALUES "
            "(1, 'bench', '2026-04-01 00:00:00.000000', 'file', 10, 'bounce', 'parsed', NULL)")
        for table in (BounceEvent.__table__, ComplaintEvent.__table__):
            for index in table.indexes:
                index.drop(conn)
        nr, nd, nc, ndom = len(REASONS), len(PROVIDERS), len(CAMPAIGNS), len(DOMAINS)
        reasons = " ".join(f"WHEN {i} THEN '{r[0]}'" for i, r in enumerate(REASONS))
        cats = " ".join(f"WHEN {i} THEN '{r[1]}'" for i, r in enumerate(REASONS))
        hard = " ".join(f"WHEN {i} THEN {r[2]}" for i, r in enumerate(REASONS))
        status = " ".join(f"WHEN {i} THEN '{r[3]}'" for i, r in enumerate(REASONS))
        diag = " ".join(f"WHEN {i} THEN '{r[4]}'" for i, r in enumerate(REASONS))
        rdom = " ".join(f"WHEN {i} THEN '{d}'" for i, (d, _) in enumerate(PROVIDERS))
        prov = " ".join(f"WHEN {i} THEN '{p}'" for i, (_, p) in enumerate(PROVIDERS))
        start = f"{START.isoformat()} 00:00:00"
        conn.exec_driver_sql(f"""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n_bounces})
            INSERT INTO bounce_events (message_id, occurred_at, recipient, recipient_domain, provider, action, status,
                                       reply_code, diagnostic, reason, hard, category, from_domain, campaign)
            SELECT 1, strftime('%Y-%m-%d %H:%M:%S.000000', '{start}', '+' || ((i * 7919) % {seconds}) || ' seconds'),
                   'u' || (i % 2000003) || '@' || (CASE (i / 7) % {nd} {rdom} END),
                   CASE (i / 7) % {nd} {rdom} END, CASE (i / 7) % {nd} {prov} END, 'failed',
                   CASE i % {nr} {status} END, substr(CASE i % {nr} {status} END, 1, 1) || '50',
                   CASE i % {nr} {diag} END, CASE i % {nr} {reasons} END, CASE i % {nr} {hard} END,
                   CASE i % {nr} {cats} END, CASE i % {ndom} WHEN 0 THEN '{DOMAINS[0]}' ELSE '{DOMAINS[1]}' END,
                   'campaign-' || substr('0' || ((i / 3) % {nc}), -2)
            FROM n""")
        conn.exec_driver_sql(f"""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n_complaints})
            INSERT INTO complaint_events (message_id, occurred_at, feedback_type, recipient, recipient_domain,
                                          from_domain, campaign, source_ip)
            SELECT 1, strftime('%Y-%m-%d %H:%M:%S.000000', '{start}', '+' || ((i * 7919) % {seconds}) || ' seconds'),
                   CASE i % 10 WHEN 0 THEN 'not-spam' ELSE 'abuse' END,
                   'c' || i || '@' || (CASE (i / 5) % {nd} {rdom} END), CASE (i / 5) % {nd} {rdom} END,
                   CASE i % {ndom} WHEN 0 THEN '{DOMAINS[0]}' ELSE '{DOMAINS[1]}' END,
                   'campaign-' || substr('0' || ((i / 3) % {nc}), -2), '{IPS[0]}'
            FROM n""")
        figures["insert_events_s"] = time.monotonic() - t0
        t1 = time.monotonic()
        for table in (BounceEvent.__table__, ComplaintEvent.__table__):
            for index in table.indexes:
                index.create(conn)
        figures["index_events_s"] = time.monotonic() - t1
    t1 = time.monotonic()
    _volume_and_reports(sessions, events)
    figures["volume_reports_s"] = time.monotonic() - t1
    t1 = time.monotonic()
    with sessions.begin() as s:
        update(s, now=NOW, providers=ProviderResolver(ProvidersConfig(mx_lookups=False)))
        update_sources(s, now=NOW)
    figures["rollups_s"] = time.monotonic() - t1
    t1 = time.monotonic()
    with sessions.begin() as s:
        score_pending(s, now=NOW)
    figures["scores_s"] = time.monotonic() - t1
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
        figures["rollup_rows"] = conn.execute(text("SELECT count(*) FROM rollups")).scalar()
    return figures


def _volume_and_reports(sessions, events: int) -> None:
    import random

    from store.alerts import raise_alert
    from store.checks import JobRun
    from store.models import DmarcAggregateReport, DmarcRecord, InboundMessage, TlsFailureDetail, TlsPolicy, TlsReport
    from store.suppressions import add_suppressions
    from store.volume import VolumeImport

    rnd = random.Random(7)
    per_day = events * SENT_PER_EVENT // DAYS
    combos = [(dom, ip, p, c) for dom in DOMAINS for ip in IPS[:4] for _, p in PROVIDERS for c in CAMPAIGNS[:6]]
    with sessions.begin() as s:
        rows = []
        for i in range(DAYS):
            d = START + timedelta(days=i)
            for dom, ip, p, c in combos:
                rows.append(dict(day=d, sending_domain=dom, sending_ip=ip, provider=p, campaign=c,
                                 sent=per_day // len(combos), rolled=0, pending=True, imported_at=NOW))
        s.bulk_insert_mappings(VolumeImport, rows)
        for i in range(DAYS):
            d = datetime.combine(START + timedelta(days=i), datetime.min.time(), tzinfo=timezone.utc)
            for org in ("google.com", "Yahoo", "Microsoft"):
                msg = InboundMessage(sha256=f"r{i}{org}", received_at=d, source="file", size=1, kind="dmarc_aggregate",
                                     status="parsed")
                s.add(msg)
                s.flush()
                for dom in DOMAINS:
                    rep = DmarcAggregateReport(message_id=msg.id, org_name=org, report_id=f"{i}-{org}-{dom}", domain=dom,
                                               begin=d, end=d + timedelta(days=1), policy={"p": "none"},
                                               record_count=40, message_count=0)
                    s.add(rep)
                    s.flush()
                    for k in range(40):
                        ok = k < 30
                        ip = IPS[k % len(IPS)] if ok else f"203.0.113.{k}"
                        s.add(DmarcRecord(report_id=rep.id, interval_begin=d, interval_end=d + timedelta(days=1),
                                          source_ip=ip, count=rnd.randint(100, 5000), disposition="none" if ok else "reject",
                                          dkim_aligned=ok, spf_aligned=ok, dmarc_pass=ok, header_from=dom,
                                          dkim_results=[{"domain": dom, "selector": "s1", "result": "pass" if ok else "fail"}],
                                          spf_results=[{"domain": dom, "scope": "mfrom", "result": "pass" if ok else "fail"}]))
                tls = TlsReport(message_id=msg.id, organization_name=org, report_id=f"t{i}{org}", begin=d,
                                end=d + timedelta(days=1), successful_sessions=50000, failed_sessions=rnd.randint(0, 300))
                pol = TlsPolicy(policy_type="sts", policy_domain=DOMAINS[0], successful_sessions=50000,
                                failed_sessions=tls.failed_sessions)
                pol.failures.append(TlsFailureDetail(result_type=rnd.choice(("certificate-expired", "starttls-not-supported")),
                                                     receiving_mx_hostname=f"mx{rnd.randint(1, 3)}.example.com",
                                                     failed_sessions=tls.failed_sessions))
                tls.policies.append(pol)
                s.add(tls)
        add_suppressions(s, [{"address": f"u{i}@gmail.com", "reason": "userunknown"} for i in range(200_000)],
                         source="bounce", now=NOW - timedelta(days=30))
        for i in range(40):
            raise_alert(s, rule="complaint_rate", dimension="campaign", key=CAMPAIGNS[i % len(CAMPAIGNS)],
                        severity="warning", message=f"alert {i}", now=NOW - timedelta(hours=i))
        for name in ("rollups", "scores", "alerts", "dmarc_sources"):
            s.add(JobRun(job=name, trigger="scheduler", started_at=NOW, finished_at=NOW + timedelta(seconds=3), rows=1))


def callbacks(ctx):
    """(page, callback name, function of the run number) for every callback of every page."""
    from dashboard import app as dash_app
    from dashboard.pages import (alerts, bounces, compare, complaints, dmarc, domains, overview, reputation,
                                 suppressions, tls)

    searches = [f"?start={END - timedelta(days=29)}&end={END}",
                f"?start={END - timedelta(days=29)}&end={END}&provider=microsoft",
                f"?start={START}&end={END}&campaign=campaign-03",
                f"?start={END - timedelta(days=6)}&end={END}&domain={DOMAINS[0]}"]

    def s(i):
        return searches[i % len(searches)]

    rows = bounces.page(ctx, searches[0], 0)
    return [
        ("shell", "route", lambda i: dash_app.route(ctx, "/bounces", s(i))),
        ("shell", "filter_options", lambda i: dash_app.filter_options(ctx, s(i))),
        ("overview", "update", lambda i: overview.update(ctx, s(i))),
        ("bounces", "update", lambda i: bounces.update(ctx, s(i))),
        ("bounces", "page", lambda i: bounces.page(ctx, s(i), i % 5)),
        ("bounces", "raw", lambda i: bounces.raw(ctx, rows, {"row": i % len(rows), "column": 0})),
        ("complaints", "update", lambda i: complaints.update(ctx, s(i))),
        ("dmarc", "update", lambda i: dmarc.update(ctx, s(i))),
        ("tls", "update", lambda i: tls.update(ctx, s(i))),
        ("reputation", "update", lambda i: reputation.update(ctx, s(i), ("provider", "sending_ip", "campaign")[i % 3])),
        ("suppressions", "update", lambda i: suppressions.update(ctx, s(i))),
        ("suppressions", "find", lambda i: suppressions.find(ctx, f"u{i * 997}@gmail.com")),
        ("compare", "options", lambda i: compare.options(ctx, s(i), "sending_ip")),
        ("compare", "update", lambda i: compare.update(ctx, s(i), "campaign", [CAMPAIGNS[1]], [CAMPAIGNS[2]])),
        ("domains", "update", lambda i: domains.update(ctx, s(i))),
        ("alerts", "update", lambda i: alerts.update(ctx, s(i))),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--db", default=str(ROOT / "var" / "bench-dashboard.db"))
    parser.add_argument("--fresh", action="store_true", help="build the store again even when it exists")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import flask

    from dashboard.app import create_dash
    from postwatch.config import Config
    from store.config import DatabaseConfig
    from store.engine import session_factory

    db = Path(args.db)
    marker = db.with_suffix(".events")
    figures: dict[str, float] = {}
    if args.fresh or not db.exists() or not marker.exists() or marker.read_text().strip() != str(args.events):
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), marker):
            path.unlink(missing_ok=True)
        db.parent.mkdir(parents=True, exist_ok=True)
        print(f"filling {db} with {args.events:,} events ...", flush=True)
        figures = fill(db, args.events)
        marker.write_text(str(args.events))
        print("  " + ", ".join(f"{k} {v:,.1f}" for k, v in figures.items()), flush=True)
    settings = Config(database=DatabaseConfig(url=f"sqlite:///{db}"))
    app = create_dash(flask.Flask("bench"), settings, clock=lambda: NOW, sessions=session_factory(settings.database))
    ctx = app.postwatch
    results = []
    with app.server.test_request_context("/"):
        for page, name, fn in callbacks(ctx):
            fn(0)  # the first call warms the page cache of SQLite; not counted
            times = []
            for i in range(args.runs):
                t0 = time.perf_counter()
                fn(i)
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
            results.append({"page": page, "callback": name, "p50_ms": statistics.median(times), "p95_ms": p95,
                            "max_ms": times[-1]})
    worst = max(r["p95_ms"] for r in results)
    if args.json:
        print(json.dumps({"events": args.events, "runs": args.runs, "fill": figures, "callbacks": results,
                          "worst_p95_ms": worst, "goal_ms": 300}, indent=2))
    else:
        print(f"\n{args.events:,} events, {args.runs} calls per callback (filters change each call)")
        print(f"{'page':14} {'callback':16} {'p50 ms':>8} {'p95 ms':>8}")
        for r in results:
            flag = "" if r["p95_ms"] <= 300 else "  over the goal"
            print(f"{r['page']:14} {r['callback']:16} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f}{flag}")
        pages: dict[str, list[float]] = {}
        for r in results:
            pages.setdefault(r["page"], []).append(r["p95_ms"])
        print("\nper page (the slowest callback's p95): "
              + ", ".join(f"{p} {max(v):.0f} ms" for p, v in pages.items()))
        print(f"worst p95 {worst:.1f} ms; goal p95 <= 300 ms: {'met' if worst <= 300 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
