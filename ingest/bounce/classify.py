"""Why did a recipient bounce: the reason, its category, and the rule that decided.

What the receiver *said* decides first: the diagnostic text against the rules in
`rules.toml` (an operator's `ingest.rules_file` before them), first match in file order,
rules scoped to a provider only for that provider's bounces. Only when no rule matches do
the codes speak: the enhanced status code, then the SMTP reply code, then the action.
Receivers put rate limits behind 5.1.1 and "mailbox not found" behind 4xx, so a code is a
weaker witness than the sentence next to it.

A hard verdict (the address is bad: suppress it) needs more than the words: the codes must
agree. A temporary code keeps the reason but makes the bounce soft, a status that names
another cause precisely (X.2.2, X.1.6, ...) takes over, and the event's `conflict` says so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ingest.bounce.providers import detect_provider
from ingest.bounce.rules import CATEGORY, REASON_TABLE, SHIPPED, Rule, RuleSet, code_matches, load_rules

__all__ = ["CATEGORY", "Decision", "classify", "decide", "is_hard", "load_rules", "pseudo_status"]

# Reasons that may make a hard verdict: the address itself is bad (reasons.toml's `hard`).
ADDRESS_REASONS = REASON_TABLE.hard
# An unknown address or host is never temporary (reasons.toml's `never_temporary`).
NEVER_TEMPORARY = REASON_TABLE.never_temporary
_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


@dataclass(frozen=True)
class Decision:
    reason: str
    rule: str  # e.g. "rules.toml:userunknown#3 /user unknown/" or "status 5.1.1"
    provider: str | None = None
    matched: str | None = None  # the part of the diagnostic the pattern matched
    status: str | None = None  # derived when the event had none
    conflict: str | None = None  # the words and the codes disagreed; how it was settled


def _temporary(code: str, action: str, text: str) -> bool:
    """Whether a failure that came without a status was temporary: the reply code, else
    the action, else what the text says (for the status made up in its place)."""
    if code[:1] in ("4", "5"):
        return code[0] == "4"
    if action == "delayed":
        return True
    lowered = text.lower()
    return ("temporar" in lowered or "persistent" in lowered) and "permanent" not in lowered


def _any_temporary(status: str | None, reply_code: str | None, action: str | None) -> bool:
    """Any witness of a temporary failure: a 4.x.x status, a 4xx reply or a delayed action."""
    return (status or "")[:1] == "4" or (reply_code or "")[:1] == "4" or (action or "") == "delayed"


def is_hard(reason: str, status: str | None = None, reply_code: str | None = None,
            action: str | None = None) -> bool:
    """Hard bounces: the address itself is bad, and no code calls the failure temporary.

    A 4xx reply or 4.x.x status is never hard, whatever the words say: a receiver that means
    "this address does not exist" for good says so with a 5xx (RFC 5321 4.2.1, RFC 3463 2).
    """
    return reason in ADDRESS_REASONS and not _any_temporary(status, reply_code, action)


def _applies(rule: Rule, provider: str | None, command: str, status: str, code: str,
             action: str) -> bool:
    if rule.provider is not None and provider not in rule.provider:
        return False
    if rule.command is not None and command not in rule.command:
        return False
    if rule.not_command is not None and command in rule.not_command:
        return False
    if rule.status is not None and not code_matches(status, rule.status):
        return False
    if rule.not_status is not None and code_matches(status, rule.not_status):
        return False
    if rule.code is not None and not code_matches(code, rule.code):
        return False
    if rule.action is not None and action not in rule.action:
        return False
    return True


def _by_codes(rs: RuleSet, status: str, code: str, action: str, text: str) -> tuple[str, str] | None:
    if not text and status[:1] == "4" and action == "failed" and rs.status.get(
            status, rs.status.get(status[:3])) in (None, "blocked", "securityerror"):
        # The receiver only ever refused for now (4.7.x "try again later", greylisting) and
        # the sending MTA gave up retrying: the message expired in its queue.
        return "expired", f"status {status} given up on"
    if status:
        if status in rs.status:
            return rs.status[status], f"status {status}"
        head = ".".join(status.split(".")[:2])
        if head in rs.status:
            return rs.status[head], f"status {head}.x"
    if code and code in rs.reply:
        return rs.reply[code], f"reply {code}"
    if action in ("delayed", "expired"):
        return "expired", f"action {action}"
    if text:
        return "onhold", "no rule matched the diagnostic"
    return None


def decide(event: dict, rules: RuleSet | None = None) -> Decision:
    """The full decision for one bounce event (what `postwatch explain` prints)."""
    rs = rules if rules is not None else load_rules()
    status = (event.get("status") or "").strip()
    if status and not _STATUS.match(status):
        status = ""
    code = (event.get("reply_code") or "").strip()
    action = (event.get("action") or "").strip().lower()
    command = (event.get("smtp_command") or "").strip().upper()
    text = " ".join((event.get("diagnostic") or "").split())  # runs of white space as one space
    provider = detect_provider(event, rs)

    if action == "delivered" or status.startswith("2."):
        d = Decision("delivered", f"action {action}" if action == "delivered" else f"status {status}",
                     provider)
    elif rs.mta_category.get(event.get("mta_category") or ""):
        category = event["mta_category"]
        d = Decision(rs.mta_category[category], f"mta_category {category}", provider)
    else:
        d = None
        candidates = rs.matcher.candidates(text)
        for r in sorted(candidates):
            rule = rs.rules[r]
            if not _applies(rule, provider, command, status, code, action):
                continue
            if not rule.patterns:
                d = Decision(rule.reason, rule.label(None), provider)
                break
            found = rule.which(text, candidates[r])
            if found:
                index, m = found
                d = Decision(rule.reason, rule.label(index), provider, m.group(0))
                break
        if d is None:
            found = _by_codes(rs, status, code, action, text)
            d = Decision(*found, provider) if found else Decision("undefined", "nothing to go by",
                                                                  provider)
    if d.reason in ADDRESS_REASONS or (d.reason == "filtered" and d.rule.startswith(SHIPPED + ":")):
        # "filtered" is the shipped rules' guess when the command is not known; an operator's
        # own filtered rule is a decision, and stands.
        d = _settle(d, status, code, action, rs)
    if not status and d.reason != "delivered":
        made = pseudo_status(d.reason, _temporary(code, action, text), rs)
        if made:
            d = Decision(d.reason, d.rule, d.provider, d.matched, made)
    return d


def _settle(d: Decision, status: str, code: str, action: str, rs: RuleSet) -> Decision:
    """A verdict that the address is bad stands only when the codes agree with it.

    A status whose detail names a cause of its own (X.2.2 mailbox full, X.1.6 moved; the
    `[precise_status]` table) outranks the words; a temporary status, reply code or action
    keeps the reason but makes the bounce soft. Either way the disagreement is recorded.
    """
    precise = rs.precise_status.get(status.split(".", 1)[1]) if status else None
    if precise and precise != d.reason:
        if precise in ADDRESS_REASONS or d.reason == "filtered":  # the code says how, more precisely
            return replace(d, reason=precise, rule=f"status {status} (over {d.rule})")
        return replace(d, reason=precise, rule=f"status {status} (over {d.rule})",
                       conflict=f"the words say {d.reason}, status {status} says {precise}")
    if d.reason not in ADDRESS_REASONS:
        return d
    for name, value in (("status", status), ("reply code", code)):
        if value[:1] == "4":
            return replace(d, conflict=f"the words say {d.reason}, but {name} {value} is temporary")
    if action == "delayed":
        return replace(d, conflict=f"the words say {d.reason}, but the action is delayed")
    return d


def pseudo_status(reason: str, temporary: bool, rules: RuleSet | None = None) -> str | None:
    """Sisimai's internal status for a reason ("userunknown" -> 5.0.911), 4.0.9nn when the
    failure was temporary; an unknown address or host is never temporary."""
    rs = rules if rules is not None else load_rules()
    number = rs.internal_status.get(reason)
    if not number:
        return None
    return f"{'4' if temporary and reason not in NEVER_TEMPORARY else '5'}.0.{number}"


def classify(event: dict, *, rules: RuleSet | None = None, config=None) -> dict:
    """What a bounce event gets from the classifier: reason, hard_bounce, category, rule,
    provider, conflict (None when the words and the codes agree), and `status` when the
    event had none (Sisimai's internal X.0.9xx codes).

    `config` (an IngestConfig) names the operator's rules file; `rules` is a loaded set.
    """
    if rules is None:
        rules = load_rules(config)  # reads the config's rules_file
    d = decide(event, rules)
    status = event.get("status") or d.status
    out = {"reason": d.reason,
           "hard_bounce": is_hard(d.reason, status, event.get("reply_code"), event.get("action")),
           "category": CATEGORY[d.reason], "rule": d.rule, "provider": d.provider,
           "conflict": d.conflict}
    if not event.get("status") and d.status:
        out["status"] = d.status
    return out
