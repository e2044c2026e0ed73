"""The sender's HTTP blueprint: the suppression feed and look-ups for other senders, and the
one-click unsubscribe links of the mail postwatch sends.

    GET    /api/v1/suppressions?since=CURSOR&limit=N[&format=csv]   read token
    GET    /api/v1/suppressions/ADDRESS[?scope=S...]                read token
    POST   /api/v1/suppressions          {"address", "reason", "scope"?, "expires_at"?}   write token
    DELETE /api/v1/suppressions/ADDRESS  {"reason", "scope"?} (or ?reason=&scope=)       write token
    GET    /unsubscribe/TOKEN            the preference page (sender/preferences.py); never changes anything
    GET    /api/v1/openapi.json          this API as an OpenAPI 3.1 document (sender/openapi.json); no token
    POST   /unsubscribe/TOKEN            RFC 8058 one-click: no login, no redirect, 200; with a `choice`
                                         field (and no List-Unsubscribe=One-Click) one of the page's choices

`blueprint(...)` makes it; `sender.web.create_app` serves it alone until the dashboard mounts
it. The feed's shape is DESIGN.md's contract, made by `store.suppressions.feed_document`.
"""
from __future__ import annotations

import hmac
import json
import logging
from functools import cache
from importlib import resources
from typing import Any, NoReturn

from flask import Blueprint, Response, render_template_string, request
from sqlalchemy.orm import Session, sessionmaker

from sender import preferences as pref
from sender import unsubscribe as unsub
from sender.config import PreferencesConfig, WebConfig
from store.addresses import HASH_PREFIX, AddressError, is_hashed, normalise
from store.clock import Clock, utcnow
from store.suppressions import (MAX_FEED_LIMIT, ScopeError, add_suppression, changes_since, feed_csv, feed_document,
                                feed_time, normalise_scope, remove_suppression, suppressions_of, target)
from store.timeparse import parse_when

log = logging.getLogger(__name__)
DEFAULT_LIMIT = 1000
READ, WRITE = "read", "write"


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _fail(status: int, message: str, **headers: str) -> NoReturn:
    raise ApiError(status, message, headers)


def _json(body: Any, status: int = 200, **headers: str) -> Response:
    # json.dumps keeps the contract's key order (Flask's jsonify would sort the keys)
    return Response(json.dumps(body, ensure_ascii=False) + "\n", status=status, headers=headers,
                    mimetype="application/json")


def _matches(given: str, tokens: tuple[str, ...]) -> bool:
    """Constant time in the token's content: every configured token is compared, always."""
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given.encode(), token.encode())
    return found


def blueprint(sessions: sessionmaker[Session], web: WebConfig, *, salt: str = "", clock: Clock = utcnow,
              name: str = "sender", preferences: PreferencesConfig | None = None) -> Blueprint:
    """The blueprint, bound to a store (`sessions`), the [web] section, the privacy salt
    (so erased addresses answer look-ups through their hash) and the [preferences] section."""
    bp = Blueprint(name, __name__)
    prefs = preferences or PreferencesConfig()
    if not web.read_tokens and not web.write_tokens:
        log.warning("web.read_tokens and web.write_tokens are empty: the suppression API refuses every "
                    "request (401) until a token is configured")
    if not web.secret:
        log.warning("web.secret is empty: unsubscribe links are refused (503); set it to the key the "
                    "sender signs List-Unsubscribe tokens with")

    def need(scope: str) -> None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given = given.strip()
        challenge = 'Bearer realm="postwatch"'
        if scheme.lower() != "bearer" or not given:
            _fail(401, "this API needs a bearer token: send 'Authorization: Bearer TOKEN' "
                       "(web.read_tokens or web.write_tokens)", **{"WWW-Authenticate": challenge})
        writer = _matches(given, web.write_tokens)
        reader = _matches(given, web.read_tokens)
        if not (writer or reader):
            _fail(401, "the bearer token is not one of web.read_tokens or web.write_tokens",
                  **{"WWW-Authenticate": challenge + ', error="invalid_token"'})
        if scope == WRITE and not writer:
            _fail(403, "this token may only read; adding and removing suppressions needs one of web.write_tokens",
                  **{"WWW-Authenticate": challenge + ', error="insufficient_scope"'})

    @bp.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return _json({"error": exc.message}, exc.status, **exc.headers)

    # -- the feed and look-ups ------------------------------------------------------------

    @bp.get("/api/v1/openapi.json")
    def openapi() -> Response:
        return Response(openapi_text(), mimetype="application/json")

    @bp.get("/api/v1/suppressions")
    def feed() -> Response:
        need(READ)
        since = _int_arg("since", 0, minimum=0, what="a cursor the feed returned, or 0 for the start")
        limit = _int_arg("limit", DEFAULT_LIMIT, minimum=1, maximum=None,  # capped below, not refused
                         what=f"how many changes, 1 to {MAX_FEED_LIMIT}")
        fmt = request.args.get("format", "json").strip().lower()
        if fmt not in ("json", "csv"):
            _fail(400, f"format must be json or csv, not {fmt!r}")
        with sessions() as session:
            rows, next_cursor = changes_since(session, since, min(limit, MAX_FEED_LIMIT))
        headers = {"X-Next-Cursor": str(next_cursor), "Cache-Control": "no-store"}
        if fmt == "csv":
            return Response(feed_csv(rows), mimetype="text/csv", headers=headers)
        return _json(feed_document(rows, next_cursor), **headers)

    @bp.get("/api/v1/suppressions/<path:address>")
    def lookup(address: str) -> Response:
        need(READ)
        shown = _address(address)
        scopes = [_scope(s) for s in request.args.getlist("scope")]
        with sessions() as session:
            rows = suppressions_of(session, shown, now=clock(), salt=salt)
        rows = [r for r in rows if not scopes or r.scope in scopes]
        return _json({"address": shown, "suppressed": bool(rows), "suppressions": [{
            "scope": r.scope, "reason": r.reason, "source": r.source, "created_at": feed_time(r.created_at),
            "expires_at": feed_time(r.expires_at) if r.expires_at else None, "erased": r.address is None,
        } for r in rows]}, **{"Cache-Control": "no-store"})

    @bp.post("/api/v1/suppressions")
    def add() -> Response:
        need(WRITE)
        body = _body()
        address = _address(_text(body, "address", required=True))
        reason = _text(body, "reason", required=True)
        scope = _scope(_text(body, "scope") or "global")
        expires_at = None
        if _text(body, "expires_at"):
            expires_at = parse_when(body["expires_at"])
            if expires_at is None:
                _fail(400, f"expires_at {body['expires_at']!r} is not an ISO 8601 date or time")
        try:
            with sessions.begin() as session:
                row, created = add_suppression(session, address, reason=reason, source="manual", now=clock(),
                                               scope=scope, expires_at=expires_at)
                answer = {"address": row.shown_address, "scope": row.scope, "reason": row.reason,
                          "created": created,
                          "expires_at": feed_time(row.expires_at) if row.expires_at else None}
        except (AddressError, ValueError) as exc:
            _fail(400, str(exc))
        log.info("suppression API: %s %s in %s (%s)", "added" if created else "already suppressed",
                 answer["address"], scope, reason)
        return _json(answer, 201 if created else 200)

    @bp.delete("/api/v1/suppressions/<path:address>")
    def remove(address: str) -> Response:
        need(WRITE)
        body = _body(optional=True)
        shown = _address(address)
        reason = _text(body, "reason") or request.args.get("reason", "").strip()
        if not reason:
            _fail(400, "say why the suppression is lifted: a JSON body {\"reason\": ...} or ?reason=")
        scope = _scope(_text(body, "scope") or request.args.get("scope", "").strip() or "global")
        with sessions.begin() as session:
            removed = remove_suppression(session, shown, reason=reason, now=clock(), scope=scope)
        if not removed:
            _fail(404, f"{shown} is not suppressed in scope {scope}")
        log.info("suppression API: removed %s from %s (%s)", shown, scope, reason)
        return _json({"address": shown, "scope": scope, "removed": len(removed)})

    # -- one-click unsubscribe ---------------------------------------------------------------

    def page(title: str, text: str, status: int = 200, template: str = _PAGE, **values: Any) -> Response:
        html = render_template_string(template, title=title, text=text, **values)
        # the URL carries a capability: keep it out of caches, indexes, Referer headers and frames
        return Response(html, status=status, mimetype="text/html", headers={
            "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                       "frame-ancestors 'none'", "X-Frame-Options": "DENY"})

    def unsubscribed_page(req: unsub.Request, status: int = 200) -> Response:
        return page("Unsubscribed", f"{unsub.masked(req.recipient)} is unsubscribed: no more mail will be "
                    "sent to it.", status)

    def preference_page(session: Session, req: unsub.Request, notice: str = "", status: int = 200) -> Response:
        who = unsub.masked(req.recipient)
        now = pref.state(session, req, now=clock(), salt=salt)
        if now.unsubscribed:
            return unsubscribed_page(req, status)
        sender = f" from {req.sending_domain}" if req.scope != "global" and req.sending_domain else ""
        return page("Your e-mail preferences", "", status, template=pref.PAGE, who=who, sender=sender,
                    notice=notice, **pref.page_values(now, prefs))

    def resolve(session: Session, token: str) -> unsub.Request | Response:
        if not web.secret:
            log.error("unsubscribe refused: web.secret is not set")
            return page("Unsubscribe unavailable", "Unsubscribing is not configured on this server yet. "
                        "Please reply to the message and ask to be removed.", 503)
        req = unsub.resolve(session, token, web.secret, web.unsubscribe_scope)
        if req is None:
            return page("Link not valid", "This unsubscribe link is not valid. Please use the link in the "
                        "message exactly as it was sent.", 404)
        return req

    @bp.get("/unsubscribe/<token>")
    def unsubscribe_page(token: str) -> Response:
        # link scanners fetch every GET: this only shows, the forms POST
        with sessions() as session:
            req = resolve(session, token)
            if isinstance(req, Response):
                return req
            return preference_page(session, req)

    @bp.post("/unsubscribe/<token>")
    def unsubscribe_post(token: str) -> Response:
        # RFC 8058: mailbox providers POST "List-Unsubscribe=One-Click"; our page's last button does too.
        # Any other POST to a valid token without one of the page's choices unsubscribes as well:
        # the signed token is the authority.
        one_click = request.form.get("List-Unsubscribe") == "One-Click"
        choice = request.form.get("choice", "")
        with sessions.begin() as session:
            req = resolve(session, token)
            if isinstance(req, Response):
                return req
            if not one_click and choice in pref.CHOICES:
                try:  # a refused choice has written nothing yet
                    notice = pref.choose(session, req, prefs, choice, topics=request.form.getlist("topic"),
                                         days=request.form.get("days", ""), now=clock(), salt=salt)
                except pref.ChoiceError as exc:
                    return preference_page(session, req, f"Nothing was changed: {exc}.", 400)
                log.info("preferences (%s): send %d, %s", choice, req.send_id, unsub.masked(req.recipient))
                return preference_page(session, req, notice)
            method = "one-click" if one_click else "post"
            _row, created = unsub.unsubscribe(session, req, now=clock(), method=method)
        log.info("unsubscribe (%s): send %d, %s in %s%s", method, req.send_id, unsub.masked(req.recipient),
                 req.scope, "" if created else " (already)")
        return unsubscribed_page(req)

    return bp


@cache
def openapi_text() -> str:
    """The OpenAPI document of this blueprint's routes, kept as data beside it."""
    return resources.files("sender").joinpath("openapi.json").read_text(encoding="utf-8")


# -- request parts ----------------------------------------------------------------------------

def _int_arg(name: str, default: int, *, minimum: int, what: str, maximum: int | None = 2 ** 63 - 1) -> int:
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        _fail(400, f"{name} must be a whole number ({what}), not {raw!r}")
    if value < minimum:
        _fail(400, f"{name} must be at least {minimum} ({what}), not {value}")
    if maximum is not None and value > maximum:  # beyond a database integer
        _fail(400, f"{name} is too large ({what})")
    return value


def _address(text: str) -> str:
    """The normalised address, or the hmac-sha256: form of an erased one."""
    try:
        if is_hashed(text.strip()):
            return HASH_PREFIX + target(text)[1]
        return normalise(text)
    except AddressError as exc:
        _fail(400, str(exc))


def _scope(text: str) -> str:
    try:
        return normalise_scope(text)
    except ScopeError as exc:
        _fail(400, str(exc))


def _body(optional: bool = False) -> dict[str, Any]:
    if optional and not request.get_data():
        return {}
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        _fail(400, "the body must be a JSON object, e.g. {\"address\": \"a@example.net\", \"reason\": "
                   "\"manual\", \"scope\": \"global\"}")
    return body


def _text(body: dict[str, Any], key: str, required: bool = False) -> str:
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            _fail(400, f"the body has no {key!r}")
        return ""
    if not isinstance(value, str):
        _fail(400, f"{key!r} must be a string, not {type(value).__name__}")
    return value.strip()


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}
button{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}</style></head>
<body><h1>{{ title }}</h1><p>{{ text }}</p>
</body></html>
"""
