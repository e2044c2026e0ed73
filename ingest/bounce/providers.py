"""Which mailbox provider answered: rules scoped to a provider apply only to its bounces.

The provider lists are data (`[providers.NAME]` in rules.toml). Like Sisimai's Rhost, the
recipient's domain is tried first, then the remote MTA, then the reporting MTA (a provider
that bounces its own mail, such as Gmail or Outlook.com, names itself there).
"""
from __future__ import annotations

from ingest.bounce.rules import RuleSet


def _host(value: str | None) -> str:
    if not value:
        return ""
    value = value.strip().lower()
    if ";" in value:  # "dns; mx.example.com"
        value = value.split(";", 1)[1].strip()
    value = value.strip("[]<> ").split()[0] if value.strip("[]<> ") else ""
    return value.rstrip(".")


def _suffix(host: str, suffixes: tuple[str, ...]) -> bool:
    for s in suffixes:
        if host == s.lstrip(".") or host.endswith(s if s.startswith(".") else "." + s):
            return True
    return False


def detect_provider(event: dict, rules: RuleSet) -> str | None:
    """The provider name from `rules.providers`, or None."""
    if not rules.providers:
        return None
    recipient = (event.get("recipient") or "").lower()
    domain = recipient.rpartition("@")[2].rstrip(">").strip()
    if domain:
        for name, spec in rules.providers.items():
            if _suffix(domain, spec["domains"]):
                return name
    for field in ("remote_mta", "reporting_mta"):
        host = _host(event.get(field))
        if not host:
            continue
        for name, spec in rules.providers.items():
            if _suffix(host, spec["hosts"]):
                return name
    return None
