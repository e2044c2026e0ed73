#!/usr/bin/env python3
"""`make bench`: run every benchmark under bench/ in turn and print what each measured.

Each benchmark prints its own figures beside its goal; this runs them one after the other
(never in parallel: they would measure each other) and ends with one line per benchmark
saying whether it ran. Options pass through the environment each benchmark documents
(e.g. MSGS for smtp_intake.sh); IMAP_N sets the mailbox size of imap_large.py (default
20000 here, 100000 when run alone).

    python bench/run_all.py [NAME ...]     (names: ingest classify analysis smtp_intake imap_large suppression dashboard)
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BENCHES = {
    "ingest": [PY, "bench/ingest.py"],
    "classify": [PY, "bench/classify.py"],
    "analysis": [PY, "bench/analysis.py"],
    "smtp_intake": ["bash", "bench/smtp_intake.sh"],
    "imap_large": [PY, "bench/imap_large.py", os.environ.get("IMAP_N", "20000")],
    "suppression": [PY, "bench/suppression.py"],
    "dashboard": [PY, "bench/dashboard.py"],
}


def main() -> int:
    names = sys.argv[1:] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    env = {**os.environ, "PATH": f"{Path(PY).parent}:{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(ROOT)}
    results = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.monotonic()
        rc = subprocess.run(BENCHES[name], cwd=ROOT, env=env).returncode
        results.append((name, rc, time.monotonic() - t0))
    print("\n=== summary ===")
    for name, rc, secs in results:
        print(f"{name:12} {'ran' if rc == 0 else f'FAILED (exit {rc})':18} {secs:7.1f}s")
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
