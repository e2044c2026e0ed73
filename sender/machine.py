"""Telling a person's open or click from a machine's: the rules, as data.

Two files, loaded and checked once when the web server starts (a bad line is a sentence
naming the file and the line): `tracking.toml` (address ranges and first-match rules on the
hit's kind, method, user agent and address class) and Apple's `egress-ip-ranges.csv` (Mail
Privacy Protection fetches through iCloud Private Relay), a dated excerpt shipped beside
this module. `[tracking] rules_file` and `apple_ranges_file` replace them.

The rules that need the message's history (a click soon after delivery, many links clicked
at once) are in sender/track_http.py; their numbers are [tracking] settings.
"""
from __future__ import annotations

import csv
import ipaddress
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from store.engagement import CLICK, OPEN

APPLE_MPP = "apple-mpp"
PRIVATE, OTHER, UNKNOWN = "private", "other", "unknown"
KINDS = (OPEN, CLICK)
_RULE_KEYS = {"reason", "hits", "methods", "ip_class", "agent_is", "agent_contains", "agent_missing", "machine"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RulesError(ValueError):
    """A rules or ranges file that cannot be used; the message says which file, line and why."""


@dataclass(frozen=True)
class Rule:
    reason: str
    hits: tuple[str, ...] = KINDS
    methods: tuple[str, ...] = ()
    ip_class: tuple[str, ...] = ()
    agent_is: tuple[str, ...] = ()
    agent_contains: tuple[str, ...] = ()  # lower-cased
    agent_missing: bool = False
    machine: bool = True

    def matches(self, kind: str, method: str, agent: str, ip_class: str) -> bool:
        if kind not in self.hits:
            return False
        if self.methods and method not in self.methods:
            return False
        if self.ip_class and ip_class not in self.ip_class:
            return False
        if self.agent_missing and agent.strip():
            return False
        if self.agent_is and agent.strip() not in self.agent_is:
            return False
        if self.agent_contains:
            low = agent.lower()
            if not any(piece in low for piece in self.agent_contains):
                return False
        return True


class Ranges:
    """Address -> class of the longest range that holds it, looked up with one dict per prefix
    length, so Apple's whole file (~10^5 prefixes) costs a few dict look-ups per hit."""

    def __init__(self) -> None:
        self._by_length: dict[tuple[int, int], dict[int, str]] = {}

    def add(self, network: Network, name: str) -> None:
        key = (network.version, network.prefixlen)
        table = self._by_length.get(key)
        if table is None:  # a new prefix length: keep the longest first, as classify() reads them
            table = self._by_length[key] = {}
            self._by_length = dict(sorted(self._by_length.items(), key=lambda kv: -kv[0][1]))
        table.setdefault(int(network.network_address), name)

    def __len__(self) -> int:
        return sum(len(t) for t in self._by_length.values())

    def classify(self, address: str | None) -> str:
        try:
            ip = ipaddress.ip_address((address or "").strip())
        except ValueError:
            return UNKNOWN
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        value, bits = int(ip), ip.max_prefixlen
        for (version, length), table in self._by_length.items():
            if version != ip.version:
                continue
            name = table.get(value >> (bits - length) << (bits - length) if length else 0)
            if name is not None:
                return name
        if ip.is_private or ip.is_loopback or ip.is_link_local:
            return PRIVATE
        return OTHER


@dataclass(frozen=True)
class Rules:
    rules: tuple[Rule, ...]
    ranges: Ranges
    date: str  # of the rules file
    apple_date: str  # of the Apple ranges ("" when the file does not say)
    apple_prefixes: int

    def judge(self, kind: str, method: str, agent: str | None, ip_class: str) -> tuple[bool, str | None]:
        """(machine, reason): the first rule that matches, or a person's hit."""
        for rule in self.rules:
            if rule.matches(kind, method.upper(), agent or "", ip_class):
                return (True, rule.reason) if rule.machine else (False, None)
        return False, None


def load_rules(rules_file: str = "", apple_ranges_file: str = "") -> Rules:
    """The shipped rules and Apple ranges, or the configured files instead; RulesError when one
    cannot be used."""
    text, name = _read(rules_file, "rules_file", "tracking.toml")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{name}: {exc}") from None
    ranges = Ranges()
    apple_text, apple_name = _read(apple_ranges_file, "apple_ranges_file", "apple_egress_ranges.csv")
    apple_date, count = _read_apple(apple_text, apple_name, ranges)
    for cls, cidrs in (doc.get("ranges") or {}).items():
        if not isinstance(cidrs, list):
            raise RulesError(f"{name}: [ranges] {cls} must be a list of CIDRs")
        for cidr in cidrs:
            ranges.add(_network(cidr, f"{name}: [ranges] {cls}"), cls)
    rules = tuple(_rule(raw, f"{name}: rule {i + 1}") for i, raw in enumerate(doc.get("rule") or []))
    return Rules(rules, ranges, str(doc.get("date", "")), apple_date, count)


def _read(configured: str, setting: str, shipped: str) -> tuple[str, str]:
    """(text, name) of the file `[tracking] setting` names, else of the one shipped beside this module."""
    if not configured:
        return resources.files("sender").joinpath(shipped).read_text(encoding="utf-8"), f"sender/{shipped}"
    try:
        return Path(configured).read_text(encoding="utf-8"), configured
    except OSError as exc:
        raise RulesError(f"tracking.{setting} {configured}: {exc.strerror or exc}") from None


def _read_apple(text: str, name: str, ranges: Ranges) -> tuple[str, int]:
    """Apple's `prefix,country,region,city,` lines; `# date: ...` in a comment dates them."""
    date, count = "", 0
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not row[0].strip():
            continue
        first = row[0].strip()
        if first.startswith("#"):
            key, _, value = ",".join(row).lstrip("# ").partition(":")
            if key.strip().lower() == "date":
                date = value.strip()
            continue
        ranges.add(_network(first, f"{name}, line {number}"), APPLE_MPP)
        count += 1
    if count == 0:
        raise RulesError(f"{name}: no address ranges in it (Apple's format: prefix,country,region,city,)")
    return date, count


def _network(text: object, where: str) -> Network:
    try:
        return ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        raise RulesError(f"{where}: {text!r} is not an address range (CIDR)") from None


def _rule(raw: object, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise RulesError(f"{where}: a [[rule]] must be a table")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise RulesError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(_RULE_KEYS))})")
    reason = raw.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 60:
        raise RulesError(f"{where}: needs a reason (a name of at most 60 characters)")

    def strings(key: str) -> tuple[str, ...]:
        value = raw.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise RulesError(f"{where} ({reason}): {key} must be a list of strings")
        return tuple(value)

    hits = strings("hits") or KINDS
    if any(h not in KINDS for h in hits):
        raise RulesError(f"{where} ({reason}): hits may be open and click, not {list(hits)}")
    rule = Rule(reason=reason.strip(), hits=hits, methods=tuple(m.upper() for m in strings("methods")),
                ip_class=strings("ip_class"), agent_is=strings("agent_is"),
                agent_contains=tuple(a.lower() for a in strings("agent_contains")),
                agent_missing=bool(raw.get("agent_missing", False)), machine=bool(raw.get("machine", True)))
    if not (rule.methods or rule.ip_class or rule.agent_is or rule.agent_contains or rule.agent_missing):
        raise RulesError(f"{where} ({reason}): a rule needs a condition (methods, ip_class, agent_is, "
                         "agent_contains or agent_missing); without one it would match every hit")
    return rule
