#!/usr/bin/env python3
"""Webhook events stored per second against a bare Flask endpoint that only parses the JSON.

Posts SendGrid Event Webhook batches (signed with a generated ECDSA key, each batch unique)
to postwatch's web server (`POST /hooks/sendgrid`: the signature checked, the body stored,
its bounces classified, its volume counted, all committed before the answer) in a fresh
store (SQLite, or a new database on BENCH_POSTGRES_URL's server with --backend postgresql),
and in the same run the same bodies to a bare Flask app whose endpoint only parses the JSON;
both served the same way (werkzeug, threaded, on 127.0.0.1), posted by the same clients.
The two take turns, `--rounds` times (new bodies each round), so that a busy moment of a
shared machine weighs on both; the figure is the median of the rounds' ratios. Prints both
rates in events per second and the ratio; the goal is at least 0.5x the bare rate.

    python bench/webhooks.py [--backend sqlite|postgresql] [--posts 400] [--events 20] [--clients 4] [--rounds 3]
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from bench import benchlib  # noqa: E402

GOAL = 0.5
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "example.net", "example.org")


def bodies(posts: int, events: int, first: int = 0) -> list[bytes]:
    """SendGrid batches: mostly processed and delivered, some bounces, deferrals and complaints."""
    out = []
    for p in range(first, first + posts):
        batch = []
        for e in range(events):
            n = p * events + e
            rcpt = f"user{n}@{DOMAINS[n % len(DOMAINS)]}"
            ev = {"email": rcpt, "timestamp": 1780315200 + n, "sg_event_id": f"ev-{n}", "category": "spring-sale",
                  "sg_message_id": f"msg-{n}.filter0001"}
            kind = n % 10
            if kind < 5:
                ev["event"] = "processed"
            elif kind < 8:
                ev.update(event="delivered", ip="192.0.2.10", response="250 OK")
            elif kind == 8:
                ev.update(event="bounce", type="bounce", status="5.1.1",
                          reason="550 5.1.1 The email account that you tried to reach does not exist.")
            else:
                ev.update(event="deferred", response="421 4.7.0 Try again later, closing connection.")
            batch.append(ev)
        out.append(json.dumps(batch).encode())
    return out


def post_all(url: str, payloads: list[tuple[bytes, dict[str, str]]], clients: int) -> float:
    """Seconds to post every payload with `clients` threads; every answer must be 2xx."""
    return benchlib.request_all([(url, raw, {"Content-Type": "application/json", **headers})
                                 for raw, headers in payloads], clients)


def bare_app():
    from flask import Flask, Response, request

    app = Flask("bare")

    @app.post("/bare")
    def bare() -> Response:
        events = json.loads(request.get_data())
        return Response(json.dumps({"events": len(events)}), mimetype="application/json")

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, default=400)
    ap.add_argument("--events", type=int, default=20, help="events per post (SendGrid batches them)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="turns of the bare endpoint and the webhook")
    benchlib.add_backend_argument(ap)
    a = ap.parse_args()
    logging.disable(logging.WARNING)

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from sqlalchemy import func, select

    from dashboard.server import create_server
    from postwatch.config import load
    from store import models as m
    from store.config import DatabaseConfig
    from store.engine import session_factory, upgrade

    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()

    def signed(raws: list[bytes]) -> list[tuple[bytes, dict[str, str]]]:
        out = []
        for raw in raws:
            stamp = str(int(time.time()))
            signature = base64.b64encode(key.sign(stamp.encode() + raw, ec.ECDSA(hashes.SHA256()))).decode()
            out.append((raw, {"X-Twilio-Email-Event-Webhook-Signature": signature,
                              "X-Twilio-Email-Event-Webhook-Timestamp": stamp}))
        return out

    total = a.posts * a.events
    bare_server = benchlib.serve_wsgi(bare_app())
    rounds: list[tuple[float, float]] = []  # (bare seconds, webhook seconds)
    with benchlib.database_url(a.backend) as url:
        db = DatabaseConfig(url=url)
        upgrade(db)
        sessions = session_factory(db)
        settings = dataclasses.replace(load(environ={
            "POSTWATCH_WEB__SECRET": "bench-secret-0123456789", "POSTWATCH_WEBHOOKS__PROVIDERS": "sendgrid",
            "POSTWATCH_WEBHOOKS__SENDGRID_PUBLIC_KEY": public}), database=db)
        server = benchlib.serve_wsgi(create_server(settings, sessions=sessions, pages=False))
        for r in range(a.rounds):
            raws = bodies(a.posts, a.events, first=r * a.posts)
            payloads = signed(raws)
            bare_s = post_all(f"http://127.0.0.1:{bare_server.server_port}/bare", [(b, {}) for b in raws], a.clients)
            hooks_s = post_all(f"http://127.0.0.1:{server.server_port}/hooks/sendgrid", payloads, a.clients)
            rounds.append((bare_s, hooks_s))
            print(f"round {r + 1}: bare {total / bare_s:7.0f} events/s, webhook {total / hooks_s:7.0f} events/s, "
                  f"ratio {bare_s / hooks_s:.2f}x", flush=True)
        server.shutdown()
        with sessions() as s:
            stored = s.scalar(select(func.count()).select_from(m.InboundMessage))
            bounces = s.scalar(select(func.count()).select_from(m.BounceEvent))
        if stored != a.posts * a.rounds:
            sys.exit(f"{stored} webhook bodies stored of {a.posts * a.rounds} posted")
    bare_server.shutdown()

    bare_s, hooks_s = benchlib.median_round(rounds)
    bare_rate, hooks_rate = total / bare_s, total / hooks_s
    print(f"posts {a.posts} x {a.events} events, {a.clients} clients, {a.rounds} rounds (the median round:)")
    print(f"bare Flask endpoint (parse only)        {bare_rate:9.0f} events/s")
    print(f"/hooks/sendgrid ({a.backend:10}) stored  {hooks_rate:9.0f} events/s  "
          f"({stored} bodies, {bounces} bounce events)")
    benchlib.report_against_bare("webhooks", a.backend, bare_rate, hooks_rate, GOAL, "webhook events", "events/s",
                                 f"{a.posts} posts of {a.events} events, median of {a.rounds} rounds")


if __name__ == "__main__":
    main()
