"""The web server: one Flask app with the dashboard behind a login, the sender's blueprint
(the suppression API with its own bearer tokens, one-click unsubscribe with none), the ESP
webhooks at /hooks/PROVIDER (sender/hooks.py, each checked as its provider signs), /healthz
and /metrics.

    create_server(settings) -> flask.Flask      # settings: postwatch.config.Config

`postwatch serve` (role web) and `postwatch web` serve it with waitress. The login is in
dashboard/auth.py, the metrics in dashboard/metrics.py, the pages in dashboard/app.py.

Users are `NAME:ROLE:HASH[:TOTP_SECRET]` entries of web.users, e.g.

    [web]
    secret = "a long random string"
    users = ["ann:editor:scrypt:32768:8:1$Qm9...$5f1c...", "bob:viewer:scrypt:32768:8:1$...$...:JBSWY3DPEHPK3PXP"]

(`postwatch user add NAME --role editor [--totp]` prints an entry.)
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, Mapping

from flask import Flask, Response, request
from sqlalchemy import literal, select
from sqlalchemy.orm import Session, sessionmaker

from dashboard import auth
from dashboard.metrics import Exposition
from sender.hooks import blueprint as hooks_blueprint
from sender.http import blueprint
from sender.track_http import blueprint as tracking_blueprint
from store.clock import Clock, utcnow

log = logging.getLogger("dashboard.server")

# A health check returns None when its part is well, else a sentence saying what is wrong.
HealthCheck = Callable[[], "str | None"]


def create_server(settings: Any, *, sessions: sessionmaker[Session] | None = None, clock: Clock = utcnow,
                  health: Mapping[str, HealthCheck] | None = None, pages: bool = True,
                  webhook_fetch: Callable[[str], bytes] | None = None) -> Flask:
    """The Flask app for `settings` (the whole configuration).

    `health` adds checks to /healthz beside the database's (`postwatch serve` adds its
    collector and scheduler); `pages=False` leaves the Dash pages out (a test of the login
    alone), with a plain page at / instead. `webhook_fetch` GETs the SNS certificates and
    subscription URLs of the webhooks (by default over HTTPS)."""
    if sessions is None:
        from store.engine import session_factory

        sessions = session_factory(settings.database)
    app = Flask("postwatch")
    app.config["MAX_CONTENT_LENGTH"] = 8 * 1024 * 1024
    auth.install(app, settings.web, clock=clock)
    app.register_blueprint(blueprint(sessions, settings.web, salt=settings.privacy.salt, clock=clock,
                                     preferences=getattr(settings, "preferences", None)))
    app.register_blueprint(hooks_blueprint(sessions, settings.webhooks, ingest=settings.ingest,
                                           domains=settings.domains, clock=clock,
                                           **({"fetch": webhook_fetch} if webhook_fetch else {})))
    app.register_blueprint(tracking_blueprint(sessions, settings.web, settings.tracking, clock=clock))
    checks: dict[str, HealthCheck] = {"database": _database_check(sessions)}
    checks.update(health or {})
    exposition = Exposition(sessions, clock)

    @app.get("/healthz")
    def healthz() -> Response:
        results = {}
        for name, check in checks.items():
            try:
                problem = check()
            except Exception as exc:  # a check that breaks is a failing part, not a 500
                problem = f"{type(exc).__name__}: {exc}"
            results[name] = "ok" if problem is None else problem
        ok = all(v == "ok" for v in results.values())
        body = {"status": "ok" if ok else "failing", "checks": results}
        return Response(json.dumps(body) + "\n", 200 if ok else 503, mimetype="application/json",
                        headers={"Cache-Control": "no-store"})

    @app.get("/metrics")
    def metrics() -> Response:
        # the classic text format, which every Prometheus reads
        return Response(exposition.render(), content_type="text/plain; version=0.0.4; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if not request.path.startswith(auth.PUBLIC_PREFIXES):
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    if pages:
        from dashboard.app import create_dash

        create_dash(app, settings, clock=clock, sessions=sessions)
    else:
        @app.get("/")
        def placeholder() -> Response:
            return Response("<!doctype html><title>postwatch</title><p id='placeholder'>postwatch: logged in as "
                            f"{auth.current_role()}</p><p><a href='/logout'>log out</a></p>", mimetype="text/html")
    return app


def _database_check(sessions: sessionmaker[Session]) -> HealthCheck:
    def check() -> str | None:
        try:
            with sessions() as session:
                session.execute(select(literal(1)))
        except Exception as exc:
            log.error("health: the database does not answer: %s", exc)
            return f"the database does not answer: {type(exc).__name__}"
        return None

    return check
