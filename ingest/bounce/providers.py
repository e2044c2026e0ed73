"""Which mailbox provider answered: rules scoped to a provider apply only to its bounces.

The provider lists are data: the shipped vocabulary (ingest/providers.toml, shared with the
analysis) and any `[providers.NAME]` of an operator's rules file. Like Sisimai's Rhost, the
recipient's domain is tried first, then the remote MTA, then the reporting MTA (a provider
that bounces its own mail, such as Gmail or Outlook.com, names itself there).
"""
from __future__ import annotations

import functools

from ingest.bounce.rules import RuleSet
from ingest.providers import suffix_lookup
from store.addresses import domain_of


def _host(value: str | None) -> str:
    if not value:
        return ""
    value = value.strip().lower()
    if ";" in value:  # "dns; mx.example.com"
        value = value.split(";", 1)[1].strip()
    value = value.strip("[]<> ")
    return value.split()[0].rstrip(".") if value else ""


@functools.lru_cache(maxsize=8)
def _tables(rules: RuleSet) -> tuple[dict[str, str], dict[str, str]]:
    """Domain -> provider and host suffix -> provider, first listed wins."""
    domains: dict[str, str] = {}
    hosts: dict[str, str] = {}
    for name, spec in rules.providers.items():
        for d in spec["domains"]:
            domains.setdefault(d.lstrip("."), name)
        for h in spec["hosts"]:
            hosts.setdefault(h.lstrip("."), name)
    return domains, hosts


def detect_provider(event: dict, rules: RuleSet) -> str | None:
    """The provider name from `rules.providers`, or None."""
    if not rules.providers:
        return None
    domains, hosts = _tables(rules)
    domain = domain_of(event.get("recipient"))
    found = suffix_lookup(domain, domains) if domain else None
    if found:
        return found
    for field in ("remote_mta", "reporting_mta"):
        host = _host(event.get(field))
        if host:
            found = suffix_lookup(host, hosts)
            if found:
                return found
    return None
