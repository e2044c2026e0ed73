"""Amazon SES notifications and event-publishing records, as SNS delivers them.

The body is an SNS message (`Type` Notification) whose `Message` is the SES JSON: a
notification (`notificationType` Bounce / Complaint / Delivery) or an event-publishing
record (`eventType` Bounce / Complaint / Delivery / Send / DeliveryDelay; opens, clicks and
the rest are left aside). The SNS signature is checked before this is called (sender/hooks.py).
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from ingest.webhooks.facts import (ReadOptions, Unreadable, WebhookFacts, address, attribution, bounce, complaint,
                                   diagnostic_text, event_result, load_json, reader, temporary_term, text, when)

PROVIDER = "ses"


def message_of(envelope: Any) -> dict[str, Any]:
    """The SES JSON inside an SNS notification."""
    if not isinstance(envelope, dict) or envelope.get("Type") != "Notification":
        raise Unreadable("not an SNS Notification (Type is not 'Notification')")
    inner = envelope.get("Message")
    try:
        data = json.loads(inner) if isinstance(inner, str) else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise Unreadable("the SNS Message is not the JSON object of an SES notification")
    return data


def _campaign(mail: dict[str, Any], key: str) -> str | None:
    tags = mail.get("tags") or {}
    value = tags.get(key) if isinstance(tags, dict) else None
    if isinstance(value, list) and value:
        return str(value[0])
    return value if isinstance(value, str) else None


def _read(headers: Mapping[str, str], raw: bytes, options: ReadOptions) -> WebhookFacts:
    data = message_of(load_json(raw, "SNS posts a JSON document"))
    facts = WebhookFacts(PROVIDER)
    kind = data.get("eventType") or data.get("notificationType")
    published = "eventType" in data  # event publishing (a configuration set), not a notification
    mail = data.get("mail") or {}
    common = mail.get("commonHeaders") or {}
    senders = common.get("from") or []
    sender = senders[0] if isinstance(senders, list) and senders else mail.get("source")
    campaign = _campaign(mail, options.campaign_key)
    attributed = attribution(message_id=common.get("messageId") or mail.get("messageId"), from_address=sender,
                             campaign=campaign, subject=common.get("subject"))
    sending_domain = attributed.get("from_domain")
    sending_ip = None  # mail.sourceIp is the address that called the SES API, not the sending IP
    if kind == "Bounce":
        b = data["bounce"]
        term = f"{b.get('bounceType') or ''}/{b.get('bounceSubType') or ''}"
        at = when(b.get("timestamp"))
        events = [bounce(options, PROVIDER, recipient=address(r.get("emailAddress")), status=r.get("status"),
                         diagnostic=diagnostic_text(r.get("diagnosticCode")) or f"Amazon SES {term} bounce",
                         term=term, temporary=temporary_term(PROVIDER, term) or r.get("action") == "delayed",
                         remote_mta=b.get("remoteMtaIp"), reporting_mta=diagnostic_text(b.get("reportingMTA")), at=at)
                  for r in b.get("bouncedRecipients") or []]
        facts.results.append(event_result("bounce", events, attributed))
    elif kind == "DeliveryDelay":
        d = data["deliveryDelay"]
        term = f"delay/{d.get('delayType') or 'undetermined'}"
        events = [bounce(options, PROVIDER, recipient=address(r.get("emailAddress")), status=r.get("status"),
                         diagnostic=diagnostic_text(r.get("diagnosticCode")) or f"Amazon SES delivery delay: {term}",
                         term=term, temporary=True, remote_mta=d.get("reportingMTA"), at=when(d.get("timestamp")))
                  for r in d.get("delayedRecipients") or []]
        facts.results.append(event_result("bounce", events, attributed))
    elif kind == "Complaint":
        c = data["complaint"]
        at = when(c.get("arrivalDate")) or when(c.get("timestamp"))
        events = [complaint(address(r.get("emailAddress")), c.get("complaintFeedbackType"), at=at,
                            user_agent=text(c.get("userAgent")), reported_domain=sending_domain)
                  for r in c.get("complainedRecipients") or []]
        facts.results.append(event_result("complaint", events, attributed))
    elif kind == "Delivery":
        # a notification has no Send to count: its deliveries are the volume
        if not published or options.volume_from == "deliveries":
            d = data["delivery"]
            for rcpt in d.get("recipients") or []:
                facts.count(when(d.get("timestamp")), sending_domain, sending_ip, address(rcpt), campaign)
        else:
            facts.ignored += 1
    elif kind == "Send" and options.volume_from == "sends":
        for rcpt in mail.get("destination") or []:
            facts.count(when(mail.get("timestamp")), sending_domain, sending_ip, address(rcpt), campaign)
    else:
        facts.ignored += 1
    return facts


read = reader(_read)
