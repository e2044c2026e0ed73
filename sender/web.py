"""The web app that serves the sender's blueprint on its own (`postwatch web`), until the
dashboard's server mounts the blueprint beside its pages.

`create_app(config)` takes the whole configuration (it reads `database`, `web`,
`privacy.salt` and `preferences`); `access_log(app)` wraps any WSGI app with one log line per request.
"""
from __future__ import annotations

import logging
import re
import time
from typing import Any, Callable, Iterable

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from sender.http import blueprint
from store.clock import Clock, utcnow

access = logging.getLogger("sender.web.access")
_TOKEN_IN_PATH = re.compile(r"((?:/unsubscribe|/t/[oc])/[^/]{4})[^/]*")  # and tracking tokens


def create_app(config: Any, *, sessions: sessionmaker[Session] | None = None, clock: Clock = utcnow) -> Flask:
    """A Flask app with the sender's blueprint, on the store `config.database` names."""
    if sessions is None:
        from store.engine import session_factory

        sessions = session_factory(config.database)
    app = Flask("postwatch")
    app.register_blueprint(blueprint(sessions, config.web, salt=config.privacy.salt, clock=clock,
                                     preferences=getattr(config, "preferences", None)))
    return app


def access_log(app: Callable) -> Callable:
    """WSGI middleware: `REMOTE "METHOD PATH" STATUS BYTES MSms`, never a header or a whole
    unsubscribe token (a token is enough to unsubscribe someone)."""

    def logged(environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        seen: dict[str, str] = {}

        def start(status: str, headers: list, exc_info: Any = None):
            seen["status"] = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        body = app(environ, start)
        size = 0
        try:
            for chunk in body:
                size += len(chunk)
                yield chunk
        finally:
            if hasattr(body, "close"):
                body.close()
            path = _TOKEN_IN_PATH.sub(r"\1…", environ.get("PATH_INFO", ""))
            if environ.get("QUERY_STRING"):
                path += "?" + environ["QUERY_STRING"]
            access.info('%s "%s %s" %s %d %.0fms', environ.get("REMOTE_ADDR", "-"), environ.get("REQUEST_METHOD"),
                        path, seen.get("status", "-"), size, (time.perf_counter() - started) * 1000)

    return logged
