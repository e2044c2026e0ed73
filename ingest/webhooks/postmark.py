"""Postmark's webhooks: one JSON object per record, told apart by `RecordType`.

Bounce (its Type names the kind: HardBounce, SoftBounce, Transient, SpamNotification,
Blocked, DnsError, AutoResponder...), SpamComplaint, and Delivery (the volume: Postmark
posts no event when it accepts a message); the rest is left aside. The credentials are
checked before this is called (sender/hooks.py).
"""
from __future__ import annotations

from typing import Any, Mapping

from ingest.webhooks.facts import (ReadOptions, Unreadable, WebhookFacts, address, attribution, bounce, complaint,
                                   diagnostic_text, event_result, load_json, reader, temporary_term, text, when)

PROVIDER = "postmark"
# Bounce Types that are not a failure to deliver: an opt-out is a complaint of its kind,
# a subscription nothing
OPT_OUT, IGNORED = "unsubscribe", ("subscribe", "inbounderror")


def _campaign(record: dict[str, Any], key: str) -> str | None:
    metadata = record.get("Metadata") or {}
    value = metadata.get(key) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and value else text(record.get("Tag"))


def _read(headers: Mapping[str, str], raw: bytes, options: ReadOptions) -> WebhookFacts:
    record = load_json(raw, "Postmark posts a JSON object")
    if not isinstance(record, dict) or not isinstance(record.get("RecordType"), str):
        raise Unreadable("a Postmark webhook is a JSON object with a RecordType; this has none")
    facts = WebhookFacts(PROVIDER)
    kind = record["RecordType"]
    campaign = _campaign(record, options.campaign_key)
    attributed = attribution(message_id=text(record.get("MessageID")), from_address=record.get("From"),
                             campaign=campaign, subject=text(record.get("Subject")))
    recipient = address(record.get("Email") or record.get("Recipient"))
    term = text(record.get("Type")) or ""
    if kind == "SpamComplaint" or (kind == "Bounce" and term == "SpamComplaint"):
        at = when(record.get("BouncedAt"))
        facts.results.append(event_result("complaint", [complaint(recipient, "abuse", at=at)], attributed))
    elif kind == "Bounce" and term.lower() == OPT_OUT:
        at = when(record.get("BouncedAt"))
        facts.results.append(event_result("complaint", [complaint(recipient, "opt-out", at=at)], attributed))
    elif kind == "Bounce" and term.lower() not in IGNORED:
        diagnostic = diagnostic_text(record.get("Details")) or text(record.get("Description"))
        event = bounce(options, PROVIDER, recipient=recipient, diagnostic=diagnostic, term=term,
                       temporary=temporary_term(PROVIDER, term), at=when(record.get("BouncedAt")))
        facts.results.append(event_result("bounce", [event], attributed))
    elif kind == "Delivery":
        facts.count(when(record.get("DeliveredAt")), attributed.get("from_domain"), None, recipient, campaign)
    else:
        facts.ignored += 1
    return facts


read = reader(_read)
