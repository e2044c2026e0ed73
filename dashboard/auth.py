"""Logging in to the dashboard: users from [web] users, hashed passwords, an optional TOTP
second factor, a signed session cookie, and a limit on failed logins.

The session holds the user's name, role and when they logged in, and a fingerprint of their
password hash: a user removed from the configuration, given another role or a new password
is logged out (or sees the new role) at the next request. The pages read the role as
`flask.session.get("role")`; `current_role()` and `require_editor()` say the same thing.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections import OrderedDict, deque
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (Blueprint, Flask, Response, abort, g, has_request_context, redirect, render_template_string,
                   request, session)

from dashboard.config import ROLES, User, WebConfig
from store.clock import Clock, utcnow

log = logging.getLogger("dashboard.auth")

# Paths served without a login: the API has its bearer tokens, an unsubscribe link is its own
# authority (RFC 8058), health and metrics are for probes and Prometheus.
PUBLIC_PATHS = frozenset({"/login", "/logout", "/healthz", "/metrics", "/favicon.ico"})
PUBLIC_PREFIXES = ("/api/", "/unsubscribe/", "/hooks/", "/t/")  # each checks its own credentials
SESSION_COOKIE = "postwatch_session"


def hash_password(password: str) -> str:
    """A salted scrypt hash in werkzeug's "scrypt:N:r:p$salt$hex" form, for web.users."""
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password)


# Checked when the user name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH: list[str] = []


def check_password(user: User | None, password: str) -> bool:
    from werkzeug.security import check_password_hash

    if user is None:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(hash_password(secrets.token_hex(8)))
        check_password_hash(_DUMMY_HASH[0], password)
        return False
    try:
        return check_password_hash(user.password_hash, password)
    except (ValueError, TypeError):  # an unknown method in the hash
        log.error("the password hash of %s cannot be read; make a new one with postwatch user hash", user.name)
        return False


def new_totp_secret() -> str:
    import pyotp

    return pyotp.random_base32()


def totp_uri(name: str, secret: str, issuer: str = "postwatch") -> str:
    """The otpauth:// URI an authenticator app reads (usually from a QR code)."""
    import pyotp

    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=issuer)


class LoginLimiter:
    """Failed logins per key (client address, user name) in a sliding window, in memory.

    Per process: with several web processes each counts its own (the limit multiplies)."""

    MAX_KEYS = 10_000

    def __init__(self, attempts: int, window: int, clock: Clock = utcnow) -> None:
        self.attempts, self.window, self.clock = attempts, window, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def wait(self, keys: list[str]) -> int:
        """Seconds before one of `keys` may try again; 0 when none is over the limit."""
        now = self.clock().timestamp()
        with self._lock:
            waits = [int(times[0] + self.window - now) + 1 for key in keys
                     if len(times := self._recent(key, now)) >= self.attempts]
        return max(waits, default=0)

    def failed(self, keys: list[str]) -> None:
        now = self.clock().timestamp()
        with self._lock:
            for key in keys:
                times = self._failures.setdefault(key, deque(maxlen=self.attempts))
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.MAX_KEYS:
                self._failures.popitem(last=False)

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


class UsedCodes:
    """The TOTP time step each user last logged in with: a code works once."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def use(self, name: str, step: int) -> bool:
        with self._lock:
            if self._last.get(name, -1) >= step:
                return False
            self._last[name] = step
            return True


def check_totp(user: User, code: str, used: UsedCodes, clock: Clock) -> bool:
    """The code of this 30-second step, the one before or the one after; each step once."""
    import pyotp

    code = "".join(code.split())
    if not user.totp_secret or not code.isdigit():
        return False
    totp = pyotp.TOTP(user.totp_secret)
    now = clock()
    for drift in (0, -1, 1):
        at = now + timedelta(seconds=30 * drift)
        if hmac.compare_digest(totp.at(at), code):
            return used.use(user.name, int(at.timestamp()) // 30)
    return False


def fingerprint(key: bytes, user: User) -> str:
    """Changes when the user's password hash or TOTP secret changes (which logs them out)."""
    return hmac.new(key, f"{user.password_hash}:{user.totp_secret}".encode(), hashlib.sha256).hexdigest()[:24]


def session_key(web: WebConfig) -> bytes:
    """The cookie-signing key: derived from web.secret (never the unsubscribe key itself)."""
    if not web.secret:
        log.warning("web.secret is empty: dashboard sessions are signed with a random key, so every login ends "
                    "when this process stops (and is unknown to other web processes); set web.secret")
        return secrets.token_bytes(32)
    return hmac.new(web.secret.encode(), b"postwatch dashboard session", hashlib.sha256).digest()


def safe_next(target: str | None) -> str:
    """A local path to return to after the login; anything else goes to the overview."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def current_role() -> str | None:
    """'viewer' or 'editor' for the logged-in user of this request; None outside a request,
    or when the signed session holds no known role."""
    if not has_request_context():
        return None
    role = session.get("role")
    return role if role in ROLES else None


def require_editor() -> None:
    """Abort with 403 unless the logged-in user is an editor (for server-side checks)."""
    if current_role() != "editor":
        abort(403, "this needs the editor role")


def install(app: Flask, web: WebConfig, *, clock: Clock = utcnow) -> None:
    """Sign sessions, gate every path but the public ones, and add /login and /logout."""
    key = session_key(web)
    app.secret_key = key
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=web.base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=web.session_hours))
    accounts = web.accounts()
    if not accounts:
        log.warning("web.users is empty: nobody can log in to the dashboard (postwatch user add NAME makes an "
                    "entry)")
    limiter = LoginLimiter(web.login_attempts, web.login_window, clock)
    used = UsedCodes()
    lifetime = web.session_hours * 3600
    app.extensions["postwatch.login_limiter"] = limiter

    def logged_in() -> User | None:
        name = session.get("user")
        user = accounts.get(name) if name else None
        if user is None:
            return None
        login_at = session.get("at", 0)
        if not isinstance(login_at, (int, float)) or clock().timestamp() - login_at > lifetime:
            return None
        if not hmac.compare_digest(str(session.get("fp", "")), fingerprint(key, user)):
            return None
        return user

    @app.before_request
    def gate() -> Response | None:
        path = request.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        user = logged_in()
        if user is not None:
            g.user = user
            if session.get("role") != user.role:  # the configuration changed the role
                session["role"] = user.role
            return None
        if session.get("user"):
            session.clear()
        if request.method == "GET" and not path.startswith("/_dash"):
            nxt = request.full_path if request.query_string else path
            return redirect("/login" + ("" if nxt == "/" else "?next=" + _quote(nxt)), 302)
        return Response('{"error": "log in first: your session has ended"}\n', 401, mimetype="application/json")

    bp = Blueprint("login", __name__)

    def form(error: str = "", status: int = 200, name: str = "") -> Response:
        session.setdefault("csrf", secrets.token_urlsafe(16))
        html = render_template_string(_LOGIN, error=error, name=name, csrf=session["csrf"],
                                      next=safe_next(request.values.get("next")))
        return Response(html, status, mimetype="text/html", headers={"Cache-Control": "no-store"})

    @bp.get("/login")
    def login_page() -> Response:
        if logged_in() is not None:
            return redirect(safe_next(request.args.get("next")), 302)
        return form()

    @bp.post("/login")
    def login() -> Response:
        name = request.form.get("username", "").strip()
        client = request.remote_addr or "-"
        keys = [f"addr:{client}", f"user:{name.lower()}"]
        sent_csrf = request.form.get("csrf", "")
        if not session.get("csrf") or not hmac.compare_digest(sent_csrf, session["csrf"]):
            return form("The login form had expired. Please try again.", 400, name)
        wait = limiter.wait(keys)
        if wait:
            log.warning("login refused for %r from %s: too many failed logins", name, client)
            minutes = max(1, round(wait / 60))
            return form(f"Too many failed logins. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
                        429, name)
        user = accounts.get(name)
        ok = check_password(user, request.form.get("password", ""))
        if ok and user is not None and user.totp_secret:
            ok = check_totp(user, request.form.get("code", ""), used, clock)
        if not ok or user is None:
            limiter.failed(keys)
            log.warning("failed login for %r from %s", name, client)
            return form("The user name, password or one-time code is wrong.", 401, name)
        limiter.forget(keys[1])
        session.clear()  # a new session at each login: nothing set before it survives
        session.permanent = True
        session.update(user=user.name, role=user.role, at=int(clock().timestamp()), fp=fingerprint(key, user))
        log.info("login: %s (%s) from %s", user.name, user.role, client)
        return redirect(safe_next(request.form.get("next")), 302)

    @bp.route("/logout", methods=["GET", "POST"])
    def logout() -> Response:
        if session.get("user"):
            log.info("logout: %s", session.get("user"))
        session.clear()
        return redirect("/login", 302)

    app.register_blueprint(bp)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>postwatch — log in</title>
<style>body{font-family:system-ui,sans-serif;max-width:22rem;margin:5rem auto;padding:0 1rem;color:#222}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button{margin-top:1.2rem;font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}
.error{color:#a00;margin:1rem 0}small{color:#666}</style></head>
<body><h1>postwatch</h1>
{% if error %}<p class="error" id="login-error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{{ csrf }}"><input type="hidden" name="next" value="{{ next }}">
<label for="username">User name</label><input id="username" name="username" value="{{ name }}" autocomplete="username" autofocus required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<label for="code">One-time code <small>(if your account has one)</small></label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*">
<button id="login-button" type="submit">Log in</button>
</form></body></html>
"""
