#!/usr/bin/env python3
"""Ingest rate against bare parsing.

Ingests the shared corpus's messages, repeated to at least --count messages (each copy made
unique by one extra header, so nothing is skipped as a duplicate), into a fresh store (SQLite,
or a new database on BENCH_POSTGRES_URL's server with --backend postgresql), and in the same
run times bare `email.message_from_bytes` (the default compat32 policy) over the same bytes.
Prints both rates and the ratio; the goal is ingest costing at most 3x the bare parse.

    python bench/ingest.py [--backend sqlite|postgresql] [--corpus ../shared/corpus] [--count 5000] [--json]
"""
from __future__ import annotations

import argparse
import email
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # this folder holds ingest.py, which must not shadow the package

from bench import benchlib  # noqa: E402

GOAL_RATIO = 3.0


def corpus_messages(corpus: Path, count: int) -> list[bytes]:
    base = [raw for _, raw in benchlib.corpus_mail(corpus)]
    out = []
    i = 0
    while len(out) < count:
        for raw in base:
            out.append(b"X-Bench-Copy: %d\n" % i + raw)
            i += 1
    return out


def bare_rate(messages: list[bytes]) -> float:
    t0 = time.perf_counter()
    for raw in messages:
        email.message_from_bytes(raw)
    return len(messages) / (time.perf_counter() - t0)


def ingest_rate(messages: list[bytes], url: str) -> tuple[float, dict]:
    from ingest.envelope import Envelope
    from ingest.pipeline import Pipeline
    from store.config import DatabaseConfig
    from store.engine import session_factory, upgrade

    db = DatabaseConfig(url=url)
    upgrade(db)
    pipeline = Pipeline(session_factory(db))
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    for out in pipeline.ingest_many((raw, Envelope("bench")) for raw in messages):
        counts[out.status] = counts.get(out.status, 0) + 1
    return len(messages) / (time.perf_counter() - t0), counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--json", action="store_true")
    benchlib.add_backend_argument(ap)
    a = ap.parse_args()
    logging.getLogger("parsedmarc").setLevel(logging.ERROR)
    logging.getLogger("ingest").setLevel(logging.CRITICAL)  # quarantine reasons are counted, not printed
    messages = corpus_messages(a.corpus, a.count)
    import ingest.parse  # noqa: F401  (imports are start-up, not per-message cost)

    bare = bare_rate(messages)
    with benchlib.database_url(a.backend) as url:
        rate, counts = ingest_rate(messages, url)
    ratio = bare / rate
    result = {"backend": a.backend, "messages": len(messages), "bare_parse_per_s": round(bare),
              "ingest_per_s": round(rate), "cost_ratio": round(ratio, 2), "goal_ratio": GOAL_RATIO,
              "statuses": counts}
    if a.json:
        print(json.dumps(result))
    else:
        print(f"messages            {len(messages)}")
        print(f"bare parse          {bare:8.0f} msg/s  (email.message_from_bytes, compat32)")
        print(f"ingest ({a.backend:10}) {rate:8.0f} msg/s  (parse + classify + store, batched)")
        print(f"cost ratio          {ratio:8.2f}x  (goal: at most {GOAL_RATIO}x)  statuses: {counts}")
    benchlib.report("ingest", a.backend, "ingest cost ÷ bare parse", round(ratio, 2), "×", f"≤ {GOAL_RATIO:g}×",
                    ratio <= GOAL_RATIO, f"{len(messages)} messages")
    benchlib.report("ingest", a.backend, "ingest rate", round(rate), "msg/s", "", None,
                    f"bare parse {bare:.0f} msg/s")


if __name__ == "__main__":
    main()
