#!/usr/bin/env python3
"""Tracking hits stored per second against a bare Flask endpoint that only answers the pixel.

Fetches the pixels and tracked links of a tracked campaign (opens and clicks, human and
machine agents: signed tokens checked, the send and the link looked up, the hit judged and
stored as an engagement event, all committed before the answer) from postwatch's web server
on a fresh store (SQLite, or a new database on BENCH_POSTGRES_URL's server with --backend
postgresql), and in the same run the same number of requests from a bare Flask app whose
endpoint only answers the GIF; both served the same way (werkzeug, threaded, on 127.0.0.1),
fetched by the same clients. The two take turns, `--rounds` times, and the figure is the
median round. Prints both rates in hits per second and the ratio; the goal is at least 0.5x.

    python bench/tracking.py [--backend sqlite|postgresql] [--hits 3000] [--clients 8] [--rounds 3]
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from bench import benchlib  # noqa: E402

GOAL = 0.5
SECRET = "bench-secret-0123456789"
SENDS = 2000
LINKS = ["https://shop.example.com/new?utm_source=news", "https://shop.example.com/sale?utm_source=news",
         "https://blog.example.com/post?utm_source=news", "https://example.com/help"]
AGENTS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
          "Mozilla/5.0", "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)",
          "Mozilla/5.0 (compatible; Barracuda Sentinel)"]


def paths(send_ids: list[int], hits: int, first: int) -> list[tuple[str, str]]:
    """(path, user agent): four opens to each click, spread over the sends."""
    from ingest.verp import make_token

    out = []
    for n in range(first, first + hits):
        token = make_token(send_ids[n % len(send_ids)], SECRET, purpose="track")
        path = f"/t/c/{token}/{n % len(LINKS)}" if n % 5 == 4 else f"/t/o/{token}"
        out.append((path, AGENTS[n % len(AGENTS)]))
    return out


def fetch_all(base: str, requests: list[tuple[str, str]], clients: int) -> float:
    """Seconds to GET every (path, user agent) with `clients` threads; every answer must be 200 or 302."""
    return benchlib.request_all([(base + path, None, {"User-Agent": agent}) for path, agent in requests],
                                clients, accept=(302,))


def bare_app():
    from flask import Flask, Response

    from sender.track_http import GIF, NO_STORE

    app = Flask("bare")

    @app.get("/t/o/<token>")
    @app.get("/t/c/<token>/<int:index>")
    def bare(token: str, index: int = 0) -> Response:
        return Response(GIF, mimetype="image/gif", headers=NO_STORE)

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hits", type=int, default=3000, help="requests per round to each server")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="turns of the bare endpoint and the tracking one")
    benchlib.add_backend_argument(ap)
    a = ap.parse_args()
    logging.disable(logging.WARNING)

    from sqlalchemy import func, insert, select

    from dashboard.server import create_server
    from postwatch.config import load
    from store.config import DatabaseConfig
    from store.engagement import EngagementEvent, TrackedCampaign
    from store.engine import session_factory, upgrade
    from store.volume import SendLog

    sent_at = datetime.now(timezone.utc) - timedelta(days=1)
    bare_server = benchlib.serve_wsgi(bare_app())
    rounds: list[tuple[float, float]] = []  # (bare seconds, tracking seconds)
    with benchlib.database_url(a.backend) as url:
        db = DatabaseConfig(url=url)
        upgrade(db)
        sessions = session_factory(db)
        with sessions.begin() as s:
            s.execute(insert(SendLog), [{"sent_at": sent_at, "recipient": f"user{n}@example.net",
                                         "recipient_domain": "example.net", "provider": "other",
                                         "sending_domain": "news.example", "campaign": "bench", "result": "sent"}
                                        for n in range(SENDS)])
            s.add(TrackedCampaign(campaign="bench", opens=True, clicks=True, links=LINKS, created_at=sent_at,
                                  updated_at=sent_at))
        with sessions() as s:
            send_ids = list(s.scalars(select(SendLog.id)))
        settings = dataclasses.replace(load(environ={"POSTWATCH_WEB__SECRET": SECRET}), database=db)
        server = benchlib.serve_wsgi(create_server(settings, sessions=sessions, pages=False))
        for r in range(a.rounds):
            requests = paths(send_ids, a.hits, first=r * a.hits)
            bare_s = fetch_all(f"http://127.0.0.1:{bare_server.server_port}", requests, a.clients)
            track_s = fetch_all(f"http://127.0.0.1:{server.server_port}", requests, a.clients)
            rounds.append((bare_s, track_s))
            print(f"round {r + 1}: bare {a.hits / bare_s:7.0f} hits/s, tracking {a.hits / track_s:7.0f} hits/s, "
                  f"ratio {bare_s / track_s:.2f}x", flush=True)
        server.shutdown()
        with sessions() as s:
            stored = s.scalar(select(func.count()).select_from(EngagementEvent))
            machine = s.scalar(select(func.count()).select_from(EngagementEvent).where(EngagementEvent.machine))
        if stored != a.hits * a.rounds:
            sys.exit(f"{stored} hits stored of {a.hits * a.rounds} made")
    bare_server.shutdown()

    bare_s, track_s = benchlib.median_round(rounds)
    bare_rate, track_rate = a.hits / bare_s, a.hits / track_s
    print(f"{a.hits} hits a round (4 opens to 1 click), {a.clients} clients, {a.rounds} rounds (the median round:)")
    print(f"bare Flask endpoint (the GIF only)      {bare_rate:9.0f} hits/s")
    print(f"/t/o, /t/c ({a.backend:10}) stored       {track_rate:9.0f} hits/s  ({stored} stored, {machine} machine)")
    benchlib.report_against_bare("tracking", a.backend, bare_rate, track_rate, GOAL, "tracking hits", "hits/s",
                                 f"{a.hits} hits, {a.clients} clients, median of {a.rounds} rounds")


if __name__ == "__main__":
    main()
