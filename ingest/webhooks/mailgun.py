"""Mailgun's webhooks: one JSON object, `signature` (checked before this is called,
sender/hooks.py) and `event-data`.

failed (severity permanent or temporary) is a bounce event, complained a complaint,
accepted (sends) or delivered (deliveries) volume; the rest is left aside.
"""
from __future__ import annotations

from typing import Any, Mapping

from ingest.webhooks.facts import (ReadOptions, Unreadable, WebhookFacts, address, attribution, bounce, complaint,
                                   event_result, load_json, reader, text, when)

PROVIDER = "mailgun"
VOLUME = {"accepted": "sends", "delivered": "deliveries"}


def event_data(body: Any) -> dict[str, Any]:
    data = body.get("event-data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise Unreadable("a Mailgun webhook is a JSON object with 'signature' and 'event-data'; this has no event-data")
    return data


def _campaign(ev: dict[str, Any], key: str) -> str | None:
    variables = ev.get("user-variables") or {}
    value = variables.get(key) if isinstance(variables, dict) else None
    if isinstance(value, str) and value:
        return value
    tags = ev.get("tags") or []
    return str(tags[0]) if isinstance(tags, list) and tags else None


def _read(headers: Mapping[str, str], raw: bytes, options: ReadOptions) -> WebhookFacts:
    ev = event_data(load_json(raw, "Mailgun posts a JSON object"))
    facts = WebhookFacts(PROVIDER)
    name = ev.get("event")
    recipient = address(ev.get("recipient"))
    at = when(ev.get("timestamp"))
    message = ev.get("message") or {}
    mail_headers = message.get("headers") or {}
    envelope = ev.get("envelope") or {}
    campaign = _campaign(ev, options.campaign_key)
    attributed = attribution(message_id=mail_headers.get("message-id"),
                             from_address=mail_headers.get("from") or envelope.get("sender"),
                             campaign=campaign, subject=mail_headers.get("subject"))
    if name == "failed":
        status = ev.get("delivery-status") or {}
        words = [text(status.get("message")), text(status.get("description"))]
        diagnostic = " ".join(w for w in words if w) or f"Mailgun: {ev.get('reason') or 'failed'}"
        code = status.get("code")
        event = bounce(options, PROVIDER, recipient=recipient, diagnostic=diagnostic, term=text(ev.get("reason")),
                       temporary=ev.get("severity") == "temporary", status=text(status.get("enhanced-code")),
                       reply_code=str(code) if isinstance(code, int) else text(code),
                       remote_mta=text(status.get("mx-host")), at=at)
        facts.results.append(event_result("bounce", [event], attributed))
    elif name == "complained":
        facts.results.append(event_result("complaint", [complaint(recipient, "abuse", at=at)], attributed))
    elif VOLUME.get(name) == options.volume_from:
        facts.count(at, attributed.get("from_domain"), text(envelope.get("sending-ip")), recipient, campaign)
    else:
        facts.ignored += 1
    return facts


read = reader(_read)
