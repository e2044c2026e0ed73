"""SendGrid's Event Webhook: a JSON array of events.

bounce (type bounce or blocked), deferred and dropped are bounce events; spamreport is a
complaint; processed (sends) or delivered (deliveries) is volume; opens, clicks and the rest
are left aside. The signature is checked before this is called (sender/hooks.py).
"""
from __future__ import annotations

from typing import Any, Mapping

from ingest.types import Attribution
from ingest.webhooks.facts import (ReadOptions, Unreadable, WebhookFacts, address, attribution, bounce, complaint,
                                   event_result, load_json, reader, text, when)

PROVIDER = "sendgrid"
VOLUME = {"processed": "sends", "delivered": "deliveries"}


def _campaign(ev: dict[str, Any], key: str) -> str | None:
    value = ev.get(key)  # a custom argument sits among the event's own keys
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
        return str(value)
    category = ev.get("category")
    if isinstance(category, list):
        category = category[0] if category else None
    return category if isinstance(category, str) and category else None


def _attributed(ev: dict[str, Any], campaign: str | None) -> Attribution:
    """The message an event is about (most of a batch is volume, which needs none of this)."""
    return attribution(message_id=ev.get("smtp-id") or ev.get("sg_message_id"), campaign=campaign)


def _read(headers: Mapping[str, str], raw: bytes, options: ReadOptions) -> WebhookFacts:
    events = load_json(raw, "SendGrid posts a JSON array of events")
    if not isinstance(events, list) or not all(isinstance(ev, dict) for ev in events):
        raise Unreadable("SendGrid posts a JSON array of event objects; this is not one")
    facts = WebhookFacts(PROVIDER)
    for ev in events:
        name = ev.get("event")
        recipient = address(ev.get("email"))
        at = when(ev.get("timestamp"))
        campaign = _campaign(ev, options.campaign_key)
        if name in ("bounce", "deferred", "dropped"):
            if name == "bounce":
                term = ev.get("bounce_classification") or ev.get("type")
                diagnostic = ev.get("reason")
            elif name == "dropped":
                term = f"dropped/{ev.get('reason') or ''}"
                diagnostic = f"SendGrid dropped the message: {ev.get('reason') or 'no reason given'}"
            else:
                term, diagnostic = None, ev.get("response")
            event = bounce(options, PROVIDER, recipient=recipient, diagnostic=diagnostic, term=term,
                           temporary=name == "deferred", status=text(ev.get("status")), at=at,
                           remote_mta=None)
            facts.results.append(event_result("bounce", [event], _attributed(ev, campaign)))
        elif name == "spamreport":
            facts.results.append(event_result("complaint", [complaint(recipient, "abuse", at=at)],
                                              _attributed(ev, campaign)))
        elif VOLUME.get(name) == options.volume_from:
            facts.count(at, None, text(ev.get("ip")) if name == "delivered" else None, recipient, campaign)
        else:
            facts.ignored += 1
    return facts


read = reader(_read)
