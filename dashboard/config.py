"""The [web] section as the dashboard's server reads it: the sender's keys (listen address,
API tokens, the secret) and the login's (users, session length, login rate limit).

`postwatch/config.py` builds it; nothing here reads the environment or a file, and nothing
here imports Flask or a hashing library (the command line loads this module).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sender.config import WebConfig as SenderWebConfig

ROLES = ("viewer", "editor")
_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
_BASE32 = re.compile(r"^[A-Z2-7]{16,}=*$")
HOW_TO_HASH = "make an entry with: postwatch user add NAME --role viewer|editor"


@dataclass(frozen=True)
class User:
    """One dashboard login: `NAME:ROLE:HASH[:TOTP_SECRET]` in web.users."""

    name: str
    role: str  # viewer | editor
    password_hash: str  # werkzeug's "method$salt$hash" (scrypt by default)
    totp_secret: str = ""  # base32; empty: no second factor

    @property
    def entry(self) -> str:
        return ":".join([self.name, self.role, self.password_hash] + ([self.totp_secret] if self.totp_secret else []))


def parse_user(entry: str) -> User:
    """`NAME:ROLE:HASH[:TOTP_SECRET]` -> User; a ValueError that says what is wrong.

    The hash itself contains ':' (``scrypt:32768:8:1$salt$hex``): the TOTP secret is what
    follows a ':' after the hash's last '$'."""
    parts = entry.strip().split(":", 2)
    if len(parts) != 3:
        raise ValueError(f"web.users: {_shown(entry)!r} is not NAME:ROLE:HASH[:TOTP_SECRET] ({HOW_TO_HASH})")
    name, role, rest = parts
    if not _NAME.match(name):
        raise ValueError(f"web.users: the user name {name!r} may only have letters, digits and . _ @ + -")
    if role not in ROLES:
        raise ValueError(f"web.users: {name} has the role {role!r}; the roles are viewer and editor")
    dollar = rest.rfind("$")
    if dollar < 0:
        raise ValueError(f"web.users: the password of {name} is not a hash ({HOW_TO_HASH})")
    digest, _, totp = rest[dollar:].partition(":")
    password_hash = rest[:dollar] + digest
    if len(password_hash.split("$")) != 3 or not digest[1:]:
        raise ValueError(f"web.users: the password of {name} is not a hash ({HOW_TO_HASH})")
    totp = totp.strip().replace(" ", "").upper()
    if totp and not _BASE32.match(totp):
        raise ValueError(f"web.users: the TOTP secret of {name} must be base32 (A-Z, 2-7), at least 16 characters")
    return User(name, role, password_hash, totp)


def _shown(entry: str) -> str:
    """An entry as an error message may show it: never the hash."""
    return entry.split("$", 1)[0][:40]


@dataclass(frozen=True)
class WebConfig(SenderWebConfig):
    """[web]: the web server — the dashboard with its login, the suppression feed and API
    (bearer tokens), one-click unsubscribe, /healthz and /metrics."""

    users: tuple[str, ...] = ()  # "NAME:ROLE:HASH[:TOTP_SECRET]"; no user: nobody can log in
    session_hours: float = 12.0  # a login lasts this long
    login_attempts: int = 5  # failed logins allowed per client address and per user name ...
    login_window: int = 900  # ... within this many seconds; then refused until they age out

    def __post_init__(self) -> None:
        super().__post_init__()
        seen: set[str] = set()
        for entry in self.users:
            user = parse_user(entry)
            if user.name in seen:
                raise ValueError(f"web.users: {user.name} is listed twice")
            seen.add(user.name)
        if self.session_hours <= 0:
            raise ValueError("web.session_hours must be positive")
        if self.login_attempts < 1 or self.login_window < 1:
            raise ValueError("web.login_attempts and web.login_window must be at least 1")

    def accounts(self) -> dict[str, User]:
        return {u.name: u for u in map(parse_user, self.users)}
