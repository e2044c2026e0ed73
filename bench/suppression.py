#!/usr/bin/env python3
"""The sender's send-time suppression check: 1,000,000 suppressed addresses in the in-memory
index, then 1,000,000 checks (half of them suppressed) in the three scopes a campaign asks
(global, domain:<From domain>, campaign:<name>).

The index is filled straight from generated (address, scope) rows with `add_many`, the same
structure `SuppressionIndex.load` fills from the suppressions table; loading through the
store (a SQLite table of a million rows) is timed separately with STORE=1.

Memory is the growth of the traced Python heap (tracemalloc) while the index is built: the
index itself, not the interpreter. Goals: >= 500,000 checks/s, <= 150 MB.

    python bench/suppression.py            (N=1000000 by default; N=... to change)
"""
from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sender.index import SuppressionIndex, scopes_for  # noqa: E402

N = int(os.environ.get("N", "1000000"))
GOAL_RATE, GOAL_MB = 500_000, 150


def address(i: int) -> str:
    return f"user{i}.{i * 7919 % 100003}@domain{i % 5000}.example"


def main() -> int:
    scopes = scopes_for("send.example.com", "spring")
    wanted = [address(i) for i in range(N)]  # built before measuring: not part of the index
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    t = time.perf_counter()
    index = SuppressionIndex()
    index.add_many((a, "global") for a in wanted)
    build = time.perf_counter() - t
    mb = (tracemalloc.get_traced_memory()[0] - before) / 1e6
    tracemalloc.stop()
    # half the checks ask for suppressed addresses, half for addresses never listed
    checks = [wanted[i] if i % 2 == 0 else address(N + i) for i in range(N)]
    suppressed = index.suppressed
    t = time.perf_counter()
    hits = 0
    for a in checks:
        if suppressed(a, scopes) is not None:
            hits += 1
    elapsed = time.perf_counter() - t
    rate = N / elapsed
    print(f"index: {len(index):,} suppressed addresses built in {build:.2f} s, {mb:.1f} MB "
          f"(goal <= {GOAL_MB} MB) {'OK' if mb <= GOAL_MB else 'OVER'}")
    print(f"checks: {N:,} in {elapsed:.2f} s = {rate:,.0f} checks/s, {hits:,} suppressed "
          f"(goal >= {GOAL_RATE:,}/s) {'OK' if rate >= GOAL_RATE else 'UNDER'}")
    if hits != (N + 1) // 2:
        print(f"WRONG: expected {(N + 1) // 2:,} suppressed", file=sys.stderr)
        return 1
    if os.environ.get("STORE") == "1":
        store_load()
    return 0


def store_load() -> None:
    """Load the index through the store: a SQLite table of N suppressions, read by `load`."""
    import sqlite3
    import tempfile
    from datetime import datetime, timezone

    from store.config import DatabaseConfig
    from store.engine import session_factory, upgrade

    folder = tempfile.mkdtemp()
    config = DatabaseConfig(url=f"sqlite:///{folder}/bench.db")
    upgrade(config)
    now = datetime.now(timezone.utc).isoformat(sep=" ")
    con = sqlite3.connect(f"{folder}/bench.db")
    con.executemany("INSERT INTO suppressions (address, scope, reason, source, created_at) VALUES (?,?,?,?,?)",
                    ((address(i), "global", "userunknown", "bounce", now) for i in range(N)))
    con.commit()
    con.close()
    t = time.perf_counter()
    index = SuppressionIndex.load(session_factory(config))
    print(f"load through the store (SQLite): {len(index):,} suppressions in {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
