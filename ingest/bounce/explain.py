"""`postwatch explain`: why each recipient of a bounce got its reason.

For every bounce event of a message it shows what the receiver said (status, reply code,
diagnostic, remote MTA, the SMTP command) and what the classifier made of it: provider,
reason, hard or soft, category, the rule that decided, the text that rule matched, and where
that rule's text comes from (its `source`); and the sending IP the event is attributed to, with
the source that named it (ingest/attribution.py).
"""
from __future__ import annotations

from typing import Any, TextIO

from ingest.bounce.classify import decide, is_hard
from ingest.bounce.rules import CATEGORY, RuleSet, load_rules
from ingest.attribution import OwnIps, sending_ip
from ingest.config import DomainsConfig, IngestConfig

FIELDS = ("recipient", "action", "status", "reply_code", "smtp_command", "remote_mta", "diagnostic",
          "mta_category")

# Decisions taken by the code tables of rules.toml name no rule; say which table spoke.
TABLE_SOURCES = (("status ", "RFC 3463 enhanced status code table"),
                 ("reply ", "SMTP reply code table"),
                 ("mta_category ", "the sending MTA's own bounce category (PowerMTA's X-PowerMTA-BounceCategory; "
                                   "rules.toml [mta_category])"))


def rule_source(label: str | None, rules: RuleSet) -> str | None:
    """Where the text of the rule that decided comes from, or which code table decided."""
    rule = rules.rule_for(label)
    if rule is not None:
        return rule.source
    for prefix, table in TABLE_SOURCES:
        if (label or "").startswith(prefix):
            return table
    return None


def explain_event(event: dict, rules: RuleSet) -> dict[str, Any]:
    """One event's facts and the decision taken on them."""
    d = decide(event, rules)
    status = event.get("status") or d.status
    out: dict[str, Any] = {k: event.get(k) for k in FIELDS}
    out["status"] = status
    out.update(provider=d.provider, reason=d.reason,
               hard_bounce=is_hard(d.reason, status, event.get("reply_code"), event.get("action")),
               category=CATEGORY[d.reason], rule=d.rule, matched=d.matched,
               source=rule_source(d.rule, rules), conflict=d.conflict)
    return out


def explain(raw: bytes, config: IngestConfig | None = None, domains: DomainsConfig | None = None) -> dict[str, Any]:
    """Parse one input and explain each of its bounce events.

    Returns {"kind", "error", "events": [explain_event(...), ...]}; complaints, reports and
    other kinds have no bounce events to explain.
    """
    from ingest.parse import parse_bytes

    config = config or IngestConfig()
    rules = load_rules(config.rules_file)
    result = parse_bytes(raw, config)
    own = OwnIps(domains)
    a = result.attribution or {}
    events = []
    for ev in result.events:
        if result.kind != "bounce" or "feedback_type" in ev:
            continue
        out = explain_event(ev, rules)
        if a.get("send_id") is not None:  # the send log holds the IP; explain reads no store
            out.update(sending_ip=None, attributed_by=f"send_log (send {a['send_id']})")
        else:
            ip, by = sending_ip(own, received=a.get("received_ips") or (), diagnostic=ev.get("diagnostic"),
                                reporting_mta=ev.get("reporting_mta"))
            out.update(sending_ip=ip, attributed_by=by)
        events.append(out)
    return {"kind": result.kind, "error": result.error, "events": events}


def print_explanation(name: str, explained: dict[str, Any], out: TextIO) -> None:
    head = f"{name}: {explained['kind']}"
    if explained["error"]:
        head += f" ({explained['error']})"
    out.write(head + "\n")
    if explained["kind"] == "bounce" and not explained["events"]:
        out.write("  no recipient found, nothing to classify\n")
    for ev in explained["events"]:
        out.write(f"  {ev['recipient'] or '(no recipient)'}\n")
        for label, key in (("action", "action"), ("status", "status"), ("reply code", "reply_code"),
                           ("command", "smtp_command"), ("remote MTA", "remote_mta"),
                           ("diagnostic", "diagnostic"), ("provider", "provider")):
            if ev.get(key):
                out.write(f"    {label + ':':12} {ev[key]}\n")
        out.write(f"    {'reason:':12} {ev['reason']} ({'hard' if ev['hard_bounce'] else 'soft'}, "
                  f"{ev['category']})\n")
        out.write(f"    {'rule:':12} {ev['rule']}\n")
        if ev.get("matched"):
            out.write(f"    {'matched:':12} {ev['matched']!r}\n")
        if ev.get("source"):
            out.write(f"    {'source:':12} {ev['source']}\n")
        if ev.get("conflict"):
            out.write(f"    {'conflict:':12} {ev['conflict']} (settled soft)\n")
        if ev.get("attributed_by"):
            out.write(f"    {'sent from:':12} {ev.get('sending_ip') or 'the IP of that send'} "
                      f"(by {ev['attributed_by']})\n")
        elif "attributed_by" in ev:
            out.write(f"    {'sent from:':12} unknown (no send log entry, and no Received header, reply "
                      f"or Reporting-MTA names one of [domains] sending_ips / mta_ips)\n")
