"""Bounce classification rules as data: reading and compiling `rules.toml` files.

The shipped `ingest/bounce/rules.toml` documents the file shape at its top. An operator's
file (`ingest.rules_file`) has the same shape; its rules are tried first, and its tables
(`status`, `reply`, `providers`, ...) override the shipped entries key by key. The shipped
providers are the vocabulary of `ingest/providers.toml`.

A rule set is compiled once per list of files and kept (`load_rules`), so classifying a
bounce costs one regex search per rule block, never a file read. A block's `test` samples are
checked for their shape here and run by `ingest.bounce.samples` (the test suite, `postwatch
rules test`), never while classifying.

The reason -> category table is data too: `reasons.toml` beside this file, read once at import.
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

# DESIGN.md's reason and category names ("Bounce reasons"): the parsers and the analysis speak
# them. Which category each reason belongs to, and whether it can make a hard bounce, is data:
# reasons.toml, read once here.
REASON_NAMES = (
    "userunknown", "hostunknown", "hasmoved", "notaccept", "suspend", "suppressed",
    "mailboxfull", "systemfull", "expired", "networkerror", "systemerror", "mailererror", "syntaxerror",
    "blocked", "badreputation", "requireptr", "authfailure", "toomanyconn", "speeding",
    "spamdetected", "virusdetected", "contenterror", "mesgtoobig", "exceedlimit", "notcompliantrfc",
    "policyviolation", "filtered", "securityerror", "failedstarttls", "norelaying", "rejected",
    "undefined", "onhold", "delivered", "vacation",
)
CATEGORIES = ("hygiene", "transient", "reputation", "content", "policy", "unknown", "delivered", "auto_reply")
REASONS_FILE = "reasons.toml"


class RulesError(ValueError):
    """A rules file that cannot be used; the message says which file and what to fix."""


@dataclass(frozen=True)
class ReasonTable:
    """reasons.toml: each reason's category, and what it says about the address."""

    category: dict[str, str]
    hard: frozenset[str]  # the address itself is bad: hard when no code calls it temporary
    never_temporary: frozenset[str]  # its made-up status is 5.0.9xx even after a 4xx reply


def load_reasons(path: str | os.PathLike | None = None) -> ReasonTable:
    """The reason table: the shipped reasons.toml, or the file at `path` (for tests)."""
    if path is None:
        source = REASONS_FILE
        text = resources.files("ingest.bounce").joinpath(REASONS_FILE).read_text("utf-8")
    else:
        source = os.path.basename(path)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    try:
        table = tomllib.loads(text).get("reasons")
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source} is not valid TOML ({exc})") from None
    if not isinstance(table, dict):
        raise RulesError(f"{source}: the reasons are written as a [reasons] table")
    category: dict[str, str] = {}
    hard: set[str] = set()
    never_temporary: set[str] = set()
    for reason, entry in table.items():
        where = f"{source}: [reasons] {reason}"
        if reason not in REASON_NAMES:
            raise RulesError(f"{where}: not one of DESIGN.md's reasons ({', '.join(REASON_NAMES)})")
        if not isinstance(entry, dict):
            raise RulesError(f'{where}: write {{ category = "..." }}')
        unknown = set(entry) - {"category", "hard", "never_temporary"}
        if unknown:
            raise RulesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                             "(a reason has category, hard and never_temporary)")
        if entry.get("category") not in CATEGORIES:
            raise RulesError(f"{where}: category {entry.get('category')!r} is not one of DESIGN.md's "
                             f"categories ({', '.join(CATEGORIES)})")
        category[reason] = entry["category"]
        for key, into in (("hard", hard), ("never_temporary", never_temporary)):
            value = entry.get(key, False)
            if not isinstance(value, bool):
                raise RulesError(f"{where}: {key} must be true or false, not {value!r}")
            if value:
                into.add(reason)
    missing = [r for r in REASON_NAMES if r not in category]
    if missing:
        raise RulesError(f"{source}: [reasons] has no entry for {', '.join(missing)}: every reason "
                         "of DESIGN.md needs its category")
    # DESIGN.md's order, whatever the file's
    return ReasonTable(category={r: category[r] for r in REASON_NAMES}, hard=frozenset(hard),
                       never_temporary=frozenset(never_temporary))


REASON_TABLE = load_reasons()
CATEGORY = REASON_TABLE.category  # reason -> category
REASONS = frozenset(CATEGORY)


# A `test` sample is a bounce event as `postwatch parse --json` prints it (the fields the
# classifier reads), with the verdict the block must give it.
SAMPLE_FIELDS = ("recipient", "remote_mta", "reporting_mta", "action", "status", "reply_code", "smtp_command",
                 "diagnostic")
_SAMPLE_FORMS = {"status": (re.compile(r"[245]\.\d{1,3}\.\d{1,3}"), "an RFC 3463 status such as 5.1.1"),
                 "reply_code": (re.compile(r"[245]\d\d"), "an SMTP reply code such as 550")}


@dataclass(frozen=True)
class Sample:
    """One `test` of a `[[rule]]` block: a bounce, and what its block must make of it."""

    event: dict[str, str]
    reason: str
    hard: bool = False


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
    samples: tuple[Sample, ...] = ()  # its `test` key: bounces this block must decide
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


def check_samples_given(data: dict, file: str = SHIPPED) -> None:
    """Every `[[rule]]` block of the shipped file carries a `test` sample that it decides.

    In an operator's file a sample is optional; `postwatch rules test` runs those given.
    """
    for n, raw in enumerate(data.get("rule", []), 1):
        raw = raw if isinstance(raw, dict) else {}
        if not raw.get("test"):
            raise RulesError(f"{file}: rule {n} ({raw.get('name') or raw.get('reason')}) has no `test`: "
                             "give a bounce this block decides and the reason it must get, e.g. "
                             'test = { diagnostic = "...", status = "5.1.1", reason = "userunknown", hard = true }')


def _samples(value, where: str) -> tuple[Sample, ...]:
    """The `test` key: one table, or a list of tables, each a bounce and its expected verdict."""
    if value is None:
        return ()
    tables = value if isinstance(value, list) else [value]
    if not tables or not all(isinstance(t, dict) for t in tables):
        raise RulesError(f"{where}: `test` must be a table such as "
                         '{ diagnostic = "550 5.1.1 User unknown", status = "5.1.1", reason = "userunknown", '
                         "hard = true }, or a list of them")
    samples = []
    for i, table in enumerate(tables, 1):
        at = f"{where}: `test`" + (f" {i}" if len(tables) > 1 else "")
        unknown = set(table) - {*SAMPLE_FIELDS, "reason", "hard"}
        if unknown:
            raise RulesError(f"{at} has unknown key(s) {', '.join(sorted(unknown))}; a sample holds the "
                             f"bounce's {', '.join(SAMPLE_FIELDS)}, and the expected reason and hard")
        reason = table.get("reason")
        if reason is None:
            raise RulesError(f"{at} has no `reason`: say which reason the sample must get")
        if reason not in REASONS:
            raise RulesError(f"{at}: reason {reason!r} is not one of DESIGN.md's reasons "
                             f"({', '.join(sorted(REASONS))})")
        hard = table.get("hard", False)
        if not isinstance(hard, bool):
            raise RulesError(f"{at}: hard must be true or false, not {hard!r}")
        event = {}
        for key in SAMPLE_FIELDS:
            if key not in table:
                continue
            text = table[key]
            if not isinstance(text, str):
                raise RulesError(f"{at}: {key} must be a string, not {text!r}")
            form = _SAMPLE_FORMS.get(key)
            if form and not form[0].fullmatch(text):
                raise RulesError(f"{at}: {key} {text!r} is not {form[1]}")
            event[key] = text
        if not event:
            raise RulesError(f"{at} holds no bounce: give at least one of {', '.join(SAMPLE_FIELDS)}")
        samples.append(Sample(event=event, reason=reason, hard=hard))
    return tuple(samples)


def _compile_rule(raw: dict, source: str, n: int, seen: dict[str, int],
                  earlier: dict[str, Rule]) -> Rule:
    where = f"{source}: rule {n}"
    reason = raw.get("reason")
    if reason not in REASONS:
        raise RulesError(f"{where}: reason {reason!r} is not one of DESIGN.md's reasons "
                         f"({', '.join(sorted(REASONS))})")
    unknown = set(raw) - {"reason", "match", "provider", "command", "not_command", "status",
                          "code", "action", "name", "comment", "not_status", "like", "source", "test"}
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

    samples = _samples(raw.get("test"), f"{where} ({name})")
    return Rule(name=name, file=source, reason=reason, patterns=patterns,
                source=(text_source or "").strip() or f"operator rules file {source}",
                provider=lower("provider"), command=upper("command"),
                not_command=upper("not_command"),
                status=_prefixes(_strings(raw.get("status"), where, "status")),
                not_status=_prefixes(_strings(raw.get("not_status"), where, "not_status")),
                code=_prefixes(_strings(raw.get("code"), where, "code")),
                action=lower("action"), samples=samples)


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
            check_samples_given(data, source)
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
