"""The configuration sections ingest reads. `postwatch/config.py` builds them; nothing here
reads the environment or a file."""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_ACCEPT = ("bounces+*@*", "bounces@*", "fbl@*", "abuse-reports@*", "dmarc@*",
                  "dmarc-reports@*", "tls-reports@*")


@dataclass(frozen=True)
class IngestConfig:
    """[ingest]: how raw messages are read and judged."""

    max_message_bytes: int = 25 * 1024 * 1024  # larger messages are stored and quarantined
    max_decompressed_bytes: int = 64 * 1024 * 1024  # a report attachment may expand to this
    offline: bool = True  # no DNS or geolocation look-ups while parsing
    rules_file: str = ""  # an operator's bounce rules (TOML), read before the shipped ones
    verp_secret: str = ""  # key of the signed return path bounces+t-TOKEN@
    batch_size: int = 500  # messages per transaction in `postwatch ingest`
    workers: int = 0  # parsing processes for `postwatch ingest`; 0 = one per core, 1 = no extra process


@dataclass(frozen=True)
class SMTPConfig:
    """[smtp]: the inbound SMTP collector."""

    listen: str = "127.0.0.1:2525"
    accept: tuple[str, ...] = field(default=DEFAULT_ACCEPT)
