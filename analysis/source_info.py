"""Where a DMARC source is, offline: country and autonomous system from the IP database that
parsedmarc ships (resources/ipinfo/ipinfo_lite.mmdb), and the service behind a reverse-DNS
base domain from parsedmarc's map (resources/maps/base_reverse_dns_map.csv).

Nothing here resolves a name or downloads a file: reverse DNS is what ingest stored (it is
looked up there only when `[ingest] offline` is off); where it is known, its base domain and
service come from the map; where it is not, the service is the one the map gives the AS's
domain, else the AS name (parsedmarc's own fallback). parsedmarc is imported on first use
(~0.5 s); each (IP, reverse DNS) pair is looked up once per process.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

CACHE_SIZE = 20_000


@dataclass(frozen=True)
class SourceInfo:
    """What the offline data say about one source IP."""

    country: str | None = None  # ISO 3166 code
    asn: int | None = None
    as_name: str | None = None
    base_domain: str | None = None  # of the reverse DNS name, when one is known
    service: str | None = None  # e.g. "Google (Including Gmail and Google Workspace)"
    service_type: str | None = None  # e.g. "Email Provider"

    @property
    def as_text(self) -> str:
        """'AS15169 Google LLC', or '' when the database does not know the address."""
        if self.asn is None:
            return self.as_name or ""
        return f"AS{self.asn}" + (f" {self.as_name}" if self.as_name else "")


class _Parsedmarc:
    """parsedmarc's helpers and one reverse-DNS map, loaded once, on first use (the web server's
    threads share them: parsedmarc would reload an empty map in place)."""

    utils: Any = None
    reverse_dns_map: dict[str, Any] = {}
    lock = threading.Lock()

    @classmethod
    def get(cls) -> Any:
        with cls.lock:
            if cls.utils is None:
                import logging

                from parsedmarc import utils  # heavy: imported only when a source is shown

                logging.getLogger("parsedmarc").setLevel(logging.CRITICAL)
                utils.load_reverse_dns_map(cls.reverse_dns_map, offline=True, always_use_local_file=True)
                cls.utils = utils
        return cls.utils


@lru_cache(maxsize=CACHE_SIZE)
def source_info(ip: str, reverse_dns: str | None = None) -> SourceInfo:
    """Country, AS and service of `ip` (with its stored reverse DNS name, if any), offline."""
    utils = _Parsedmarc.get()
    shared = _Parsedmarc.reverse_dns_map
    try:
        info = utils.get_ip_address_info(ip, offline=True, always_use_local_files=True, reverse_dns_map=shared)
    except (ValueError, TypeError, OSError):  # not an IP address, or no database installed
        return SourceInfo()
    base, service, kind = None, info.get("name"), info.get("type")
    if reverse_dns:
        base = utils.get_base_domain(reverse_dns.strip().rstrip(".").lower())
        if base:
            found = utils.get_service_from_reverse_dns_base_domain(
                base, offline=True, always_use_local_file=True, reverse_dns_map=shared)
            service, kind = found.get("name"), found.get("type")
    return SourceInfo(info.get("country"), info.get("asn"), info.get("as_name"), base, service, kind)
