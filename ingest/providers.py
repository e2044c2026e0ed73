"""The mailbox provider vocabulary: one list of names, read from `ingest/providers.toml`.

The bounce classifier (ingest/bounce/providers.py) and the analysis (analysis/providers.py)
both read it, so a provider on a stored event is always a key the rollups count under.
"""
from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

SHIPPED = "providers.toml"
FILE = Path(__file__).with_name(SHIPPED)
KEYS = frozenset({"domains", "hosts", "org_words", "formerly", "complaint_reports"})


@dataclass(frozen=True)
class Provider:
    name: str
    domains: tuple[str, ...] = ()  # consumer mailbox domains
    hosts: tuple[str, ...] = ()  # host name suffixes of its MX and reporting MTAs
    org_words: tuple[str, ...] = ()  # words naming it in a DMARC / TLS report's organisation
    formerly: tuple[str, ...] = ()  # names earlier versions used for it
    complaint_reports: bool = False  # sends an ARF report per complaint (a feedback loop)


def _strings(spec: dict, key: str, name: str) -> tuple[str, ...]:
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{SHIPPED}: providers.{name}.{key} must be a list of strings")
    return tuple(v.strip().lower().lstrip(".") for v in value)


@functools.cache
def providers() -> dict[str, Provider]:
    """The shipped providers by name, in file order."""
    data = tomllib.loads(FILE.read_text("utf-8"))
    out: dict[str, Provider] = {}
    for name, spec in data.get("providers", {}).items():
        unknown = set(spec) - KEYS
        if unknown or name != name.lower() or len(name) > 40:
            raise ValueError(f"{SHIPPED}: providers.{name} has unknown keys {sorted(unknown)} or a name "
                             "that is not lower case and at most 40 characters")
        reports = spec.get("complaint_reports", False)
        if not isinstance(reports, bool):
            raise ValueError(f"{SHIPPED}: providers.{name}.complaint_reports must be true or false")
        out[name] = Provider(name, *(_strings(spec, key, name)
                                     for key in ("domains", "hosts", "org_words", "formerly")), reports)
    return out


@functools.cache
def reporting() -> frozenset[str]:
    """The providers that send a complaint report per complaint (a feedback loop)."""
    return frozenset(p.name for p in providers().values() if p.complaint_reports)


@functools.cache
def renamed() -> dict[str, str]:
    """Former name -> the provider it belongs to now ("aol" -> "yahoo")."""
    return {old: p.name for p in providers().values() for old in p.formerly}


def suffix_lookup(host: str, table: dict[str, str]) -> str | None:
    """The value for `host` or for the nearest domain above it ("mx1.hotmail.com" -> hotmail.com)."""
    host = host.strip().lower().rstrip(".")
    while host:
        found = table.get(host)
        if found:
            return found
        host = host.partition(".")[2]
    return None
