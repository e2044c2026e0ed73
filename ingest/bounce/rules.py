"""Bounce classification rules as data: reading and compiling `rules.toml` files.

The shipped `ingest/bounce/rules.toml` documents the file shape at its top. An operator's
file (`ingest.rules_file`) has the same shape; its rules are tried first, and its tables
(`status`, `reply`, `providers`, ...) override the shipped entries key by key. The shipped
providers are the vocabulary of `ingest/providers.toml`.

A rule set is compiled once per list of files and kept (`load_rules`), so classifying a
bounce costs one regex search per rule block, never a file read.
"""
from __future__ import annotations

import functools
import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources

from ingest import providers as vocabulary
from ingest.bounce.matcher import Matcher

SHIPPED = "rules.toml"

# Every reason of DESIGN.md's table, and the category it belongs to.
CATEGORY = {
    "userunknown": "hygiene", "hostunknown": "hygiene", "hasmoved": "hygiene", "notaccept": "hygiene",
    "suspend": "hygiene", "suppressed": "hygiene",
    "mailboxfull": "transient", "systemfull": "transient", "expired": "transient",
    "networkerror": "transient", "systemerror": "transient", "mailererror": "transient",
    "syntaxerror": "transient",
    "blocked": "reputation", "badreputation": "reputation", "requireptr": "reputation",
    "authfailure": "reputation", "toomanyconn": "reputation", "speeding": "reputation",
    "spamdetected": "content", "virusdetected": "content", "contenterror": "content",
    "mesgtoobig": "content", "exceedlimit": "content", "notcompliantrfc": "content",
    "policyviolation": "policy", "filtered": "policy", "securityerror": "policy",
    "failedstarttls": "policy", "norelaying": "policy", "rejected": "policy",
    "undefined": "unknown", "onhold": "unknown",
    "delivered": "delivered", "vacation": "auto_reply",
}
REASONS = frozenset(CATEGORY)


class RulesError(ValueError):
    """A rules file that cannot be used; the message says which file and what to fix."""


@dataclass
class Rule:
    """One `[[rule]]` block: a reason, its conditions, and its patterns (any one matches)."""

    name: str  # "userunknown", "blocked@microsoft", or the block's own `name`
    file: str  # "rules.toml" or the operator file's name
    reason: str
    patterns: list[str]
    source: str = ""  # which MTA or provider emits the text, and where that is documented
    provider: frozenset[str] | None = None
    command: frozenset[str] | None = None
    not_command: frozenset[str] | None = None
    status: tuple[str, ...] | None = None  # exact codes, or prefixes ending in "."
    not_status: tuple[str, ...] | None = None
    code: tuple[str, ...] | None = None  # exact reply codes, or 1-2 digit prefixes
    action: frozenset[str] | None = None
    _each: list[re.Pattern | None] = field(default_factory=list)

    def label(self, index: int | None) -> str:
        if index is None:
            return f"{self.file}:{self.name}"
        return f"{self.file}:{self.name}#{index + 1} /{self.patterns[index]}/"

    def search(self, index: int, text: str) -> re.Match | None:
        """Pattern `index` against `text`; each pattern is compiled the first time it is needed."""
        if not self._each:
            self._each = [None] * len(self.patterns)
        rx = self._each[index]
        if rx is None:
            rx = self._each[index] = re.compile(self.patterns[index], re.I)
        return rx.search(text)

    def which(self, text: str, indexes=None) -> tuple[int, re.Match] | None:
        """The first of this rule's patterns (in file order) that matches `text`."""
        for i in (range(len(self.patterns)) if indexes is None else indexes):
            m = self.search(i, text)
            if m:
                return i, m
        return None


@dataclass(eq=False)  # compared and hashed by identity: one compiled set per list of files
class RuleSet:
    rules: list[Rule]
    status: dict[str, str]  # "5.1.1" or class.subject "5.7" -> reason
    reply: dict[str, str]  # "550" -> reason
    internal_status: dict[str, str]  # reason -> "911" (Sisimai's X.0.9xx codes)
    precise_status: dict[str, str]  # "2.2" (subject.detail) -> reason that outranks the words
    mta_category: dict[str, str]  # an MTA's own bounce category ("bad-mailbox") -> reason
    providers: dict[str, dict[str, tuple[str, ...]]]  # name -> {"domains": .., "hosts": ..}
    sources: tuple[str, ...]

    @functools.cached_property
    def matcher(self) -> Matcher:
        return Matcher(self.rules)

    @functools.cached_property
    def _by_label(self) -> dict[str, Rule]:
        return {rule.label(None): rule for rule in self.rules}

    def rule_for(self, label: str | None) -> Rule | None:
        """The rule a decision's label ("<file>:<name>#<n> /<pattern>/") names, if any.

        Code-table decisions ("status 5.1.1", "reply 550") name no rule.
        """
        if not label:
            return None
        return self._by_label.get(label.split("#", 1)[0].strip())


def _strings(value, where: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RulesError(f"{where}: `{key}` must be a string or a list of strings")


def _prefixes(values: list[str]) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in values) or None


def code_matches(value: str | None, wanted: tuple[str, ...]) -> bool:
    """`wanted` holds exact codes ("5.1.1", "550") or prefixes ("5.7.", "4", "55")."""
    if not value:
        return False
    for w in wanted:
        if w.endswith(".") or len(w) < 3:
            if value.startswith(w):
                return True
        elif value == w:
            return True
    return False


def check_sources(data: dict, file: str = SHIPPED) -> None:
    """Every `[[rule]]` block of the shipped file says where its text comes from.

    Operator files may leave `source` out; the shipped rules are what the project vouches for.
    """
    for n, raw in enumerate(data.get("rule", []), 1):
        raw = raw if isinstance(raw, dict) else {}
        src = raw.get("source")
        if not isinstance(src, str) or not src.strip():
            raise RulesError(f"{file}: rule {n} ({raw.get('name') or raw.get('reason')}) has no "
                             "`source`: say which MTA or provider emits its text, and where that "
                             "is documented")


def _compile_rule(raw: dict, source: str, n: int, seen: dict[str, int],
                  earlier: dict[str, Rule]) -> Rule:
    where = f"{source}: rule {n}"
    reason = raw.get("reason")
    if reason not in REASONS:
        raise RulesError(f"{where}: reason {reason!r} is not one of DESIGN.md's reasons "
                         f"({', '.join(sorted(REASONS))})")
    unknown = set(raw) - {"reason", "match", "provider", "command", "not_command", "status",
                          "code", "action", "name", "comment", "not_status", "like", "source"}
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    text_source = raw.get("source")
    if text_source is not None and not isinstance(text_source, str):
        raise RulesError(f"{where}: `source` must be a string")
    patterns = _strings(raw.get("match"), where, "match")
    if raw.get("like"):
        # `like = "NAME"`: the patterns of an earlier block of the same file, tried again here
        # under this block's conditions.
        if raw["like"] not in earlier:
            raise RulesError(f"{where}: like = {raw['like']!r} names no earlier block of this file")
        patterns = patterns + earlier[raw["like"]].patterns
    providers = _strings(raw.get("provider"), where, "provider")
    name = raw.get("name") or (reason + (f"@{'+'.join(providers)}" if providers else ""))
    seen[name] = seen.get(name, 0) + 1
    if seen[name] > 1:
        name = f"{name}-{seen[name]}"
    # The shipped patterns are checked by the test suite and compiled when first needed; an
    # operator's are checked here, so that a typo stops the command at start.
    for p in patterns if source != SHIPPED else ():
        try:
            re.compile(p)
        except re.error as exc:
            raise RulesError(f"{where} ({reason}): pattern /{p}/ is not a valid regex: {exc}") from None
    conds = [raw.get(k) for k in ("provider", "command", "status", "code", "action")]
    if not patterns and not any(conds):
        raise RulesError(f"{where} ({reason}): a rule needs `match` patterns or a condition")

    def upper(key):
        vals = _strings(raw.get(key), where, key)
        return frozenset(v.upper() for v in vals) or None

    def lower(key):
        vals = _strings(raw.get(key), where, key)
        return frozenset(v.lower() for v in vals) or None

    return Rule(name=name, file=source, reason=reason, patterns=patterns,
                source=(text_source or "").strip() or f"operator rules file {source}",
                provider=lower("provider"), command=upper("command"),
                not_command=upper("not_command"),
                status=_prefixes(_strings(raw.get("status"), where, "status")),
                not_status=_prefixes(_strings(raw.get("not_status"), where, "not_status")),
                code=_prefixes(_strings(raw.get("code"), where, "code")),
                action=lower("action"))


def _read(path: str | None) -> tuple[str, dict]:
    if path is None:
        text = resources.files("ingest.bounce").joinpath(SHIPPED).read_text("utf-8")
        source = SHIPPED
    else:
        source = os.path.basename(path) or path
        try:
            with open(path, "rb") as fh:
                text = fh.read().decode("utf-8")
        except OSError as exc:
            raise RulesError(f"cannot read the bounce rules file {path} (ingest.rules_file): "
                             f"{exc.strerror or exc}") from None
    try:
        return source, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source} is not valid TOML ({exc}); fix the file named by "
                         "ingest.rules_file") from None


def _table(data: dict, key: str, source: str) -> dict[str, str]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise RulesError(f"{source}: [{key}] must be a table")
    for k, v in table.items():
        if key != "internal_status" and v not in REASONS:
            raise RulesError(f"{source}: [{key}] {k} = {v!r} is not a known reason")
    return {str(k): str(v) for k, v in table.items()}


@functools.lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> RuleSet:
    rules: list[Rule] = []
    status: dict[str, str] = {}
    reply: dict[str, str] = {}
    internal: dict[str, str] = {}
    precise: dict[str, str] = {}
    categories: dict[str, str] = {}
    providers: dict[str, dict[str, tuple[str, ...]]] = {}
    sources = []
    # Operator files first: their rules are tried first, their table entries win.
    for path in (*paths, None):
        source, data = _read(path)
        sources.append(source)
        seen: dict[str, int] = {}
        earlier: dict[str, Rule] = {}
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            raise RulesError(f"{source}: rules are written as [[rule]] blocks")
        if path is None:
            check_sources(data, source)
        for n, raw in enumerate(raw_rules, 1):
            rule = _compile_rule(raw, source, n, seen, earlier)
            earlier.setdefault(rule.name, rule)
            rules.append(rule)
        for table, into in (("status", status), ("reply", reply), ("internal_status", internal),
                            ("precise_status", precise), ("mta_category", categories)):
            for k, v in _table(data, table, source).items():
                into.setdefault(k, v)
        for name, spec in (data.get("providers") or {}).items():
            if name.lower() in providers:  # names are case-blind: an earlier file's entry wins
                continue
            providers[name.lower()] = {
                "domains": tuple(d.lower() for d in _strings(spec.get("domains"), source, "domains")),
                "hosts": tuple(h.lower() for h in _strings(spec.get("hosts"), source, "hosts")),
            }
    for p in vocabulary.providers().values():
        providers.setdefault(p.name, {"domains": p.domains, "hosts": p.hosts})
    _scope_to_known(rules, providers)
    rs = RuleSet(rules=rules, status=status, reply=reply, internal_status=internal,
                 precise_status=precise, mta_category=categories, providers=providers,
                 sources=tuple(sources))
    rs.matcher  # built now, once: worker processes forked after loading share it
    return rs


def _scope_to_known(rules: list[Rule], providers: dict) -> None:
    """A rule scoped to a former provider name ("aol") applies to the provider it is now part
    of ("yahoo"), unless a rules file still defines that name itself; a name no list knows is
    an error, since such a rule could never apply."""
    renamed = vocabulary.renamed()
    for rule in rules:
        if rule.provider is None:
            continue
        scope = frozenset(p if p in providers else renamed.get(p, p) for p in rule.provider)
        unknown = sorted(scope - set(providers))
        if unknown:
            raise RulesError(f"{rule.file}: rule {rule.name} is scoped to provider {', '.join(unknown)}, "
                             "which no [providers] table names; use one of "
                             f"{', '.join(sorted(providers))}, or add a [providers.NAME] table")
        rule.provider = scope


def load_rules(rules_file: str | os.PathLike | None = "", *more: str) -> RuleSet:
    """The compiled rule set: the operator's file(s) first, then the shipped rules.

    Accepts a path, an `IngestConfig` (its `rules_file`), or nothing for the shipped rules.
    """
    if rules_file is not None and not isinstance(rules_file, (str, os.PathLike)):
        rules_file = getattr(rules_file, "rules_file", "") or ""
    paths = tuple(os.fspath(p) for p in (rules_file, *more) if p)
    return _load(paths)
