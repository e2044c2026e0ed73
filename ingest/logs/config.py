"""[logs]: how `postwatch ingest-log` reads MTA logs. `postwatch/config.py` builds it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LogsConfig:
    """[logs]: reading MTA delivery logs."""

    # the campaign of a send: a header Postfix's header_checks log with INFO (`campaign`
    # matches Campaign and X-Campaign), a PowerMTA accounting column, a KumoMTA meta key
    campaign_field: str = "campaign"
    timezone: str = "UTC"  # of log timestamps that carry no zone (classic syslog)
    poll_seconds: float = 1.0  # how often `--follow` looks for new lines and rotation
