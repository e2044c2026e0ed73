"""What the benchmarks share: the store they write to, and the one line each prints for `make bench`.

A benchmark that uses the store takes `--backend sqlite|postgresql`. On PostgreSQL it makes a
database of its own on the server named by BENCH_POSTGRES_URL (a URL to any database on
that server, e.g. postgresql://postgres@127.0.0.1:54329/postgres) and drops it afterwards;
`bench/run_all.py` starts a throw-away server with `.ci/pg-cluster` when the variable is unset.

Every benchmark ends by printing one `BENCH {json}` line per figure (see `report`);
`bench/run_all.py` gathers those lines into its table.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

BACKENDS = ("sqlite", "postgresql")


def add_backend_argument(parser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite",
                        help="store to write to (postgresql needs BENCH_POSTGRES_URL)")


def postgres_server_url() -> str:
    url = os.environ.get("BENCH_POSTGRES_URL", "")
    if not url.startswith("postgresql"):
        sys.exit("BENCH_POSTGRES_URL must name a PostgreSQL server for --backend postgresql "
                 "(start one with: .ci/pg-cluster start var/bench-pg)")
    return url


@contextlib.contextmanager
def database_url(backend: str, sqlite_path: str | None = None) -> Iterator[str]:
    """A URL to an empty store on `backend`, removed afterwards.

    SQLite: `sqlite_path` when given, else a file in a temporary folder. PostgreSQL: a new
    database on BENCH_POSTGRES_URL's server.
    """
    if backend == "sqlite":
        if sqlite_path:
            yield f"sqlite:///{sqlite_path}"
            return
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    server, admin = postgres_admin()
    name = f"bench_{uuid.uuid4().hex[:10]}"
    create_database(admin, name)
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        drop_database(admin, url, name)
        admin.dispose()


def postgres_admin():
    """(BENCH_POSTGRES_URL's server as a psycopg URL, an AUTOCOMMIT engine on it for CREATE/DROP DATABASE)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    server = make_url(postgres_server_url()).set(drivername="postgresql+psycopg")
    return server, create_engine(server, isolation_level="AUTOCOMMIT")


def create_database(admin, name: str) -> None:
    from sqlalchemy import text

    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))


def drop_database(admin, url: str, name: str) -> None:
    """Drop database `name` (at `url`), closing the store's own pooled connections to it first."""
    from sqlalchemy import text

    from store.engine import forget_engine

    forget_engine(url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def corpus_mail(corpus: Path, kinds: tuple[str, ...] | None = None) -> list[tuple[str, bytes]]:
    """(kind, bytes) of the shared corpus's cases that are mail messages, in the manifest's order
    (its bare xml/json/zip report files are not: they have no header to vary); only `kinds` when given."""
    from ingest.message import looks_like_message

    out = []
    for case in json.loads((corpus / "manifest.json").read_text()):
        if kinds is None or case["kind"] in kinds:
            raw = (corpus / case["file"]).read_bytes()
            if looks_like_message(raw):
                out.append((case["kind"], raw))
    return out


def report(bench: str, backend: str, metric: str, value: float, unit: str, goal: str,
           met: bool | None, detail: str = "") -> None:
    """Print the line `make bench` puts in its table: one figure beside its goal.

    `backend` is "sqlite", "postgresql" or "-" (a figure that touches no store); `met` is
    None for a figure with no goal (printed for information).
    """
    print("BENCH " + json.dumps({"bench": bench, "backend": backend, "metric": metric,
                                 "value": value, "unit": unit, "goal": goal, "met": met,
                                 "detail": detail}), flush=True)


def serve_wsgi(app):
    """`app` on werkzeug's threaded server on 127.0.0.1 (a free port), served from a thread;
    `.server_port` says where, `.shutdown()` stops it. The web benchmarks serve both sides so."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def timed_clients(work, items: list, clients: int) -> float:
    """Seconds for `clients` threads to run `work(chunk)` on their share of `items`."""
    import threading
    import time

    threads = [threading.Thread(target=work, args=(items[i::clients],)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def request_all(requests: list[tuple[str, bytes | None, dict[str, str]]], clients: int,
                accept: tuple[int, ...] = ()) -> float:
    """Seconds for `clients` threads to send every (url, body, headers): a GET, or a POST of
    the body when there is one. Redirects are not followed; every answer must be 2xx or a
    status in `accept`, else the benchmark exits saying why (its figure would be wrong)."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    failures: list[str] = []

    def run(chunk: list[tuple[str, bytes | None, dict[str, str]]]) -> None:
        for url, body, headers in chunk:
            try:
                with opener.open(urllib.request.Request(url, data=body, headers=headers), timeout=60) as resp:
                    resp.read()
            except urllib.error.HTTPError as exc:
                if exc.code not in accept:
                    failures.append(f"{url}: {exc.code}")
            except Exception as exc:
                failures.append(f"{url}: {type(exc).__name__}: {exc}")

    elapsed = timed_clients(run, requests, clients)
    if failures:
        sys.exit(f"{len(failures)} of {len(requests)} requests failed, e.g. {failures[0]}")
    return elapsed


def median_round(rounds: list[tuple[float, float]]) -> tuple[float, float]:
    """The (bare seconds, measured seconds) round whose ratio is the median of the rounds'."""
    return sorted(rounds, key=lambda r: r[0] / r[1])[len(rounds) // 2]


def report_against_bare(bench: str, backend: str, bare_rate: float, rate: float, goal: float, what: str,
                        unit: str, detail: str) -> None:
    """The figures of a web benchmark that takes turns with a bare endpoint (`rate` and
    `bare_rate` in `unit`, of the median round): the ratio beside its goal (printed too),
    and the rate of `what` stored."""
    ratio = rate / bare_rate
    print(f"ratio {ratio:.2f}x  (goal: at least {goal}x)")
    report(bench, backend, "stored ÷ bare endpoint", round(ratio, 2), "×", f"≥ {goal:g}×", ratio >= goal, detail)
    report(bench, backend, f"{what} stored", round(rate), unit, "", None, f"bare endpoint {bare_rate:.0f} {unit}")
