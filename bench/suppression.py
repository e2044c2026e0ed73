#!/usr/bin/env python3
"""The sender's send-time suppression check: 1,000,000 suppressed addresses loaded from the
store into the in-memory index, then 1,000,000 checks (half of them suppressed) in the three
scopes a campaign asks (global, domain:<From domain>, campaign:<name>).

The suppressions table of a fresh store (SQLite, or a new database on BENCH_POSTGRES_URL's
server with --backend postgresql) is filled with N rows in bulk, then `SuppressionIndex.load`
reads them as the sender does at start-up (timed, for information).

Memory is what the index holds: `sys.getsizeof` over its dicts, sets and keys (the figure
tracemalloc gives for the same structure, without slowing the load down several times).
Goals: >= 500,000 checks/s, <= 150 MB.

    python bench/suppression.py [--backend sqlite|postgresql]    (N=1000000 by default; N=... to change)
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from bench import benchlib  # noqa: E402
from bench.bulk import insert_rows  # noqa: E402
from sender.index import SuppressionIndex, scopes_for  # noqa: E402

N = int(os.environ.get("N", "1000000"))
GOAL_RATE, GOAL_MB = 500_000, 150


def address(i: int) -> str:
    return f"user{i}.{i * 7919 % 100003}@domain{i % 5000}.example"


def index_bytes(index: SuppressionIndex) -> int:
    """The memory the index's own objects take: its per-scope dicts and sets and their keys."""
    total = 0
    for by_scope in (index._keys, index._expiring, index._erased):
        total += sys.getsizeof(by_scope)
        for scope, bucket in by_scope.items():
            total += sys.getsizeof(scope) + sys.getsizeof(bucket) + sum(map(sys.getsizeof, bucket))
            if isinstance(bucket, dict):
                total += sum(map(sys.getsizeof, bucket.values()))
    return total


def fill(url: str, n: int) -> float:
    """n suppressions in force, global scope, written in bulk; returns the seconds it took."""
    from store.config import DatabaseConfig
    from store.engine import get_engine, upgrade

    config = DatabaseConfig(url=url)
    upgrade(config)
    t = time.perf_counter()
    raw = get_engine(config).raw_connection()
    try:
        insert_rows(raw.driver_connection, "suppressions", ("address", "scope", "reason", "source", "created_at"),
                    ((address(i), "global", "userunknown", "bounce", "2026-06-01 00:00:00.000000") for i in range(n)))
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    benchlib.add_backend_argument(ap)
    backend = ap.parse_args().backend
    from store.config import DatabaseConfig
    from store.engine import session_factory

    with benchlib.database_url(backend) as url:
        filled = fill(url, N)
        sessions = session_factory(DatabaseConfig(url=url))
        gc.collect()
        t = time.perf_counter()
        index = SuppressionIndex.load(sessions)
        load = time.perf_counter() - t
    mb = index_bytes(index) / 1e6
    scopes = scopes_for("send.example.com", "spring")
    # half the checks ask for suppressed addresses, half for addresses never listed
    checks = [address(i) if i % 2 == 0 else address(N + i) for i in range(N)]
    suppressed = index.suppressed
    t = time.perf_counter()
    hits = 0
    for a in checks:
        if suppressed(a, scopes) is not None:
            hits += 1
    elapsed = time.perf_counter() - t
    rate = N / elapsed
    print(f"store ({backend}): {N:,} suppressions written in {filled:.2f} s")
    print(f"index: {len(index):,} suppressed addresses loaded from the store in {load:.2f} s, "
          f"{mb:.1f} MB (goal <= {GOAL_MB} MB) {'OK' if mb <= GOAL_MB else 'OVER'}")
    print(f"checks: {N:,} in {elapsed:.2f} s = {rate:,.0f} checks/s, {hits:,} suppressed "
          f"(goal >= {GOAL_RATE:,}/s) {'OK' if rate >= GOAL_RATE else 'UNDER'}")
    benchlib.report("suppression", backend, "checks per second", round(rate), "checks/s", f"≥ {GOAL_RATE:,}/s",
                    rate >= GOAL_RATE, f"{N:,} checks in 3 scopes, half suppressed")
    benchlib.report("suppression", backend, "index memory", round(mb, 1), "MB", f"≤ {GOAL_MB} MB", mb <= GOAL_MB,
                    f"{len(index):,} addresses")
    benchlib.report("suppression", backend, "index load from the store", round(load, 2), "s", "", None,
                    f"{N:,} rows")
    if len(index) != N or hits != (N + 1) // 2:
        print(f"WRONG: expected {N:,} in the index and {(N + 1) // 2:,} suppressed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
