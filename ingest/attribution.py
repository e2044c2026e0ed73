"""What a returned message says about where it came from.

Bounces and complaints carry the original message (or its headers) as a `message/rfc822`
or `text/rfc822-headers` part; its Message-ID, From, List-Id, Feedback-ID and campaign
headers tie the event back to a send.
"""
from __future__ import annotations

import email
import email.message
import re
from email.utils import getaddresses

from ingest.message import IndexedMessage, header_text
from ingest.mimesplit import message_from_bytes
from ingest.types import Attribution

RETURNED_TYPES = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers",
                  "text/rfc822", "message/partial")
CAMPAIGN_HEADERS = ("X-Campaign", "X-Campaign-ID", "X-CampaignID", "X-Mailgun-Campaign-Id",
                    "X-Campaign-Name", "X-MC-Campaign", "X-Postwatch-Campaign")


# An address of atoms and dots, alone or in angle brackets after a display name without
# comments or escapes: the common From, whose address getaddresses() reads as written.
_ATOMS = r'[^\s"()<>@,:;.\[\]\\]+(?:\.[^\s"()<>@,:;.\[\]\\]+)*'
_PLAIN_FROM = re.compile(rf'(?:"[^"\\\r\n]*"|[^"()<>@,:;\[\]\\\r\n])*<({_ATOMS}@{_ATOMS})>[ \t]*'
                         rf'|[ \t]*({_ATOMS}@{_ATOMS})[ \t]*').fullmatch


def first_address(value: str) -> str | None:
    """The first address with an "@" that `email.utils.getaddresses([value])` finds."""
    m = _PLAIN_FROM(value)
    if m:
        return m.group(1) or m.group(2)
    addrs = [a for _, a in getaddresses([value]) if "@" in a]
    return addrs[0] if addrs else None


def returned_message(msg: email.message.Message) -> email.message.Message | None:
    """The returned original message (or its headers) inside a bounce or report."""
    for part in msg.walk():
        if part is msg:
            continue
        ctype = part.get_content_type()
        if ctype not in RETURNED_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            inner = payload[0] if payload and isinstance(payload[0], email.message.Message) else None
            if inner is not None:
                return inner
            continue
        if isinstance(payload, str) and payload.strip():
            raw = (part.get_payload(decode=True) or payload.encode("utf-8", "replace")).lstrip()
            return message_from_bytes(raw, IndexedMessage) or email.message_from_bytes(raw, _class=IndexedMessage)
    return None


def attribution_from(original: email.message.Message | None) -> Attribution:
    if original is None:
        return {}
    out: Attribution = {}
    mid = header_text(original, "Message-ID")
    if mid:
        out["message_id"] = mid.strip()
    sender = header_text(original, "From")
    if sender:
        address = first_address(sender)
        if address:
            out["from_address"] = address.lower()
            out["from_domain"] = address.rsplit("@", 1)[1].lower().rstrip(">")
    for key, name in (("subject", "Subject"), ("list_id", "List-Id"), ("feedback_id", "Feedback-ID")):
        value = header_text(original, name)
        if value:
            out[key] = value  # type: ignore[literal-required]
    for name in CAMPAIGN_HEADERS:
        value = header_text(original, name)
        if value:
            out["campaign"] = value
            break
    return out
