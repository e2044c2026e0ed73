#!/usr/bin/env python3
"""`make bench`: run every benchmark under bench/ in turn and print one table of their figures.

The benchmarks run one after the other, never in parallel (they would measure each other);
those that use the store run once on SQLite and once on PostgreSQL. Each child's output is
shown as it runs; its `BENCH {json}` lines (bench/benchlib.py) are gathered into the table
printed at the end:

    benchmark | figure | SQLite | PostgreSQL | goal | met

A figure that touches no store is measured once and shown under SQLite ("same, no store"
under PostgreSQL). A benchmark that fails shows FAILED, and this exits non-zero; a goal that
is not met is a "no" in the table, not a failure.

PostgreSQL: the server BENCH_POSTGRES_URL names (any database on it); when unset, a throw-away
server is started with `.ci/pg-cluster start var/bench-pg 54330` and stopped at the end (its
data stays in var/bench-pg, where the dashboard benchmark's kept database is reused next time).

    python bench/run_all.py [--quick] [--backend sqlite|postgresql] [NAME ...]

--quick (or BENCH_QUICK=1) runs small sizes, to check the harness rather than to measure.
Sizes otherwise come from each benchmark's defaults and environment (N for suppression.py,
MSGS, SESS, LEN for smtp_intake.sh; IMAP_N sets imap_large.py's mailbox, 20000 here).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BACKENDS = ("sqlite", "postgresql")
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
PG_DIR, PG_PORT = "var/bench-pg", "54330"


def _py(script: str, *args: str) -> list[str]:
    return [PY, f"bench/{script}", *args]


@dataclass(frozen=True)
class Bench:
    name: str
    command: Callable[[bool], list[str]]  # quick -> the command, without --backend
    store: bool  # takes --backend and runs once per back end
    quick_env: dict[str, str] = field(default_factory=dict)  # sizes in quick mode; the caller's environment wins


BENCHES = [
    Bench("ingest", lambda q: _py("ingest.py", *(["--count", "300"] if q else [])), True),
    Bench("classify", lambda q: _py("classify.py", *(["--count", "60"] if q else [])), False),
    Bench("dmarc", lambda q: _py("dmarc.py", *(["--reports", "6", "--records", "600"] if q else [])), True),
    Bench("smtp_intake", lambda q: ["bash", "bench/smtp_intake.sh"], False, {"MSGS": "400", "ROUNDS": "2"}),
    Bench("suppression", lambda q: _py("suppression.py"), True, {"N": "20000"}),
    Bench("analysis", lambda q: _py("analysis.py", *(["--events", "20000", "--more", "200"] if q else [])), True),
    Bench("dashboard", lambda q: _py("dashboard.py", *(
        ["--events", "20000", "--runs", "3", "--db", "var/bench-dashboard-quick.db",
         "--pg-database", "bench_dashboard_quick"] if q else [])), True),
    Bench("imap_large", lambda q: _py("imap_large.py", "300" if q else os.environ.get("IMAP_N", "20000")), True),
    Bench("collectors", lambda q: _py("collectors.py", *(["--count", "400"] if q else [])), True),
    Bench("long_lines", lambda q: _py("long_lines.py", *(["--sizes", "10000,100000"] if q else [])), False),
    Bench("abuse", lambda q: _py("abuse.py", *(["--quick"] if q else [])), True),
    Bench("webhooks", lambda q: _py("webhooks.py", *(["--posts", "40"] if q else [])), True),
    Bench("logs", lambda q: _py("logs.py", *(["--lines", "20000"] if q else [])), True),
    Bench("tracking", lambda q: _py("tracking.py", *(["--hits", "200", "--rounds", "1"] if q else [])), True),
]


@dataclass
class Run:
    """One benchmark run on one back end ("-": a benchmark that touches no store)."""

    bench: str
    backend: str
    rc: int | None  # None: it could not be started (see `why`)
    lines: list[dict] = field(default_factory=list)  # its BENCH lines
    why: str = ""  # what went wrong, for the notes under the table
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.rc != 0 or not self.lines


def run(bench: str, backend: str, argv: list[str], env: dict[str, str]) -> Run:
    """Run one benchmark, echoing its output, and gather its BENCH lines."""
    t0 = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=3)
    lines = []
    try:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1)
    except OSError as exc:
        return Run(bench, backend, None, why=f"could not start {argv[0]}: {exc}")
    with proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.startswith("BENCH "):
                try:
                    lines.append(json.loads(line[6:]))
                    continue
                except json.JSONDecodeError:
                    pass
            if line.strip():
                tail.append(line.strip())
    rc = proc.returncode
    why = ""
    if rc != 0:
        why = f"exit {rc}" + (f": {tail[-1][:300]}" if tail else "")
    elif not lines:
        why = "it printed no BENCH line"
    return Run(bench, backend, rc, lines, why, time.monotonic() - t0)


# -- the table ---------------------------------------------------------------------------------

def figure(value, unit: str) -> str:
    if value is None:
        return "n/a"
    v = float(value)
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return f"{text}{unit}" if unit in ("×", "%") else f"{text} {unit}".rstrip()


def _met(marks: dict[str, bool | None]) -> str:
    """yes / no / "no on PostgreSQL" from the met flags per back end ("-" when no goal)."""
    known = {b: m for b, m in marks.items() if m is not None}
    if not known:
        return "-"
    if all(known.values()):
        return "yes"
    if not any(known.values()):
        return "no"
    return "no on " + ", ".join(LABELS.get(b, b) for b, m in known.items() if not m)


def table(runs: list[Run]) -> tuple[list[list[str]], list[str]]:
    """The rows (benchmark, figure, SQLite, PostgreSQL, goal, met) and the notes under them."""
    rows, notes = [], []
    benches = list(dict.fromkeys(r.bench for r in runs))
    for bench in benches:
        mine = [r for r in runs if r.bench == bench]
        failed = any(r.failed for r in mine)
        for r in mine:
            if r.failed:
                where = "" if r.backend == "-" else f" on {LABELS.get(r.backend, r.backend)}"
                notes.append(f"{bench}{where}: FAILED ({r.why})")
        metrics = list(dict.fromkeys(line["metric"] for r in mine for line in r.lines))
        if not metrics:
            metrics = ["(no figures)"]
        for metric in metrics:
            cells = {"sqlite": "", "postgresql": ""}
            goal, marks = "", {}
            for r in mine:
                line = next((x for x in r.lines if x["metric"] == metric), None)
                text = figure(line["value"], line.get("unit", "")) if line else ("FAILED" if r.failed else "-")
                if r.backend == "-":
                    cells["sqlite"], cells["postgresql"] = text, "same, no store"
                else:
                    cells[r.backend] = text
                if line:
                    goal = goal or line.get("goal") or ""
                    marks[r.backend] = line.get("met")
                    if line["value"] is None and line.get("detail"):
                        where = "" if r.backend == "-" else f" on {LABELS.get(r.backend, r.backend)}"
                        notes.append(f"{bench} / {metric}{where}: n/a ({line['detail']})")
            rows.append([bench, metric, cells["sqlite"], cells["postgresql"], goal or "-",
                         "FAILED" if failed else _met(marks)])
    return rows, notes


def render(rows: list[list[str]], notes: list[str]) -> str:
    head = ["benchmark", "figure", "SQLite", "PostgreSQL", "goal", "met"]
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    right = {2, 3}  # the figures line up on their right

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    out = [line(head), "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2)
                                     for i, w in enumerate(widths)) + "|"]
    out += [line(r) for r in rows]
    out += [f"  {n}" for n in notes]
    return "\n".join(out)


# -- PostgreSQL --------------------------------------------------------------------------------

class Postgres:
    """BENCH_POSTGRES_URL, or a throw-away cluster started here (and stopped by `stop`)."""

    def __init__(self) -> None:
        self.url = os.environ.get("BENCH_POSTGRES_URL", "")
        self.started = False
        self.why = ""

    def start(self) -> bool:
        if self.url or self.why:
            return bool(self.url)
        print(f"\n=== starting a throw-away PostgreSQL in {PG_DIR} on port {PG_PORT} ===", flush=True)
        proc = subprocess.run([str(ROOT / ".ci" / "pg-cluster"), "start", PG_DIR, PG_PORT], cwd=ROOT,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            self.why = f"no PostgreSQL server: {(proc.stderr or proc.stdout).strip()[-300:]}"
            print(self.why, flush=True)
            return False
        self.url, self.started = proc.stdout.strip().splitlines()[-1], True
        print(self.url, flush=True)
        return True

    def stop(self) -> None:
        if self.started:
            subprocess.run([str(ROOT / ".ci" / "pg-cluster"), "stop", PG_DIR], cwd=ROOT)
            self.started = False


def main(argv: list[str] | None = None) -> int:
    names = [b.name for b in BENCHES]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (all by default): {', '.join(names)}")
    ap.add_argument("--backend", choices=BACKENDS, help="run the store benchmarks on this back end only")
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1",
                    help="small sizes: checks the harness, measures nothing worth keeping (also BENCH_QUICK=1)")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in names]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}")
    chosen = [b for b in BENCHES if not args.names or b.name in args.names]
    backends = [args.backend] if args.backend else list(BACKENDS)
    base = {**os.environ, "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT)}
    if args.quick:
        base["BENCH_QUICK"] = "1"
    pg = Postgres()
    runs: list[Run] = []
    try:
        for bench in chosen:
            env = {**bench.quick_env, **base} if args.quick else dict(base)
            for backend in (backends if bench.store else ["-"]):
                argv = bench.command(args.quick) + (["--backend", backend] if bench.store else [])
                title = bench.name if backend == "-" else f"{bench.name} on {LABELS[backend]}"
                print(f"\n=== {title} ===", flush=True)
                if not (ROOT / argv[1]).exists():
                    runs.append(Run(bench.name, backend, None, why=f"{argv[1]} is missing"))
                    print(runs[-1].why, flush=True)
                    continue
                if backend == "postgresql":
                    if not pg.start():
                        runs.append(Run(bench.name, backend, None, why=pg.why))
                        continue
                    env["BENCH_POSTGRES_URL"] = pg.url
                runs.append(run(bench.name, backend, argv, env))
    finally:
        pg.stop()
    rows, notes = table(runs)
    print("\n=== make bench" + (" (quick: small sizes, figures not comparable)" if args.quick else "") + " ===")
    print(render(rows, notes))
    print("  ran in: " + ", ".join(f"{r.bench}{'' if r.backend == '-' else '/' + r.backend} {r.seconds:.0f} s"
                                   for r in runs if r.rc is not None))
    return 1 if any(r.failed for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
