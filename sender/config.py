"""The configuration sections the sender and its HTTP blueprint read.

`postwatch/config.py` builds them; nothing here reads the environment or a file.
"""
from __future__ import annotations

from dataclasses import dataclass


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
