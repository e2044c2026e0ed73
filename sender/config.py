"""The configuration sections the sender and its HTTP blueprint read.

`postwatch/config.py` builds them; nothing here reads the environment or a file.
"""
from __future__ import annotations

from dataclasses import dataclass

MIN_TOKEN_LENGTH = 16  # a bearer token shorter than this is too easy to guess


@dataclass(frozen=True)
class SenderConfig:
    """[sender]: how postwatch's own sender delivers."""

    smarthost: str = "127.0.0.1:25"  # HOST:PORT of the relay; "mx" delivers straight to each domain's MX
    starttls: str = "required"  # required | opportunistic | off

    def __post_init__(self) -> None:
        if self.starttls not in ("required", "opportunistic", "off"):
            raise ValueError(f"sender.starttls must be required, opportunistic or off, not {self.starttls!r}")


@dataclass(frozen=True)
class WebConfig:
    """[web]: the web server (the suppression feed, one-click unsubscribe; later the dashboard)."""

    listen: str = "127.0.0.1:8050"
    base_url: str = "http://127.0.0.1:8050"  # the public address in unsubscribe links and digests
    read_tokens: tuple[str, ...] = ()  # bearer tokens that may read the suppression feed and look-ups
    write_tokens: tuple[str, ...] = ()  # bearer tokens that may also add and remove suppressions
    secret: str = ""  # key of the signed unsubscribe tokens; empty: unsubscribe links are refused
    unsubscribe_scope: str = "global"  # global | domain: an unsubscribe suppresses for the sending domain only
    threads: int = 8  # requests served at once by `postwatch web`

    def __post_init__(self) -> None:
        if self.unsubscribe_scope not in ("global", "domain"):
            raise ValueError(f"web.unsubscribe_scope must be global or domain, not {self.unsubscribe_scope!r}")
        for name in ("read_tokens", "write_tokens"):
            if any(len(token) < MIN_TOKEN_LENGTH for token in getattr(self, name)):
                raise ValueError(f"web.{name}: every token must be at least {MIN_TOKEN_LENGTH} characters "
                                 "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
        if self.threads < 1:
            raise ValueError("web.threads must be at least 1")
