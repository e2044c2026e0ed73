"""Amazon SES notifications mailed as JSON (directly, or wrapped in an SNS envelope).

A "Bounce" notification lists `bouncedRecipients` with DSN-like fields; a "Delivery"
notification lists the `recipients` that were delivered, with the receiver's reply.
Complaints are ARF's business, not this reader's.
"""
from __future__ import annotations

import json
import re

from ingest.bounce.smtp import clean_address, is_address, squash, status_field

MARKER = re.compile(r'notificationType\\?"\s*:\s*\\?"(?:Bounce|Delivery)\\?"')
_FOLD = re.compile(r"!?\n ?")  # SNS mail folds long lines; the JSON never holds a raw newline


def looks_like_ses(text: str) -> bool:
    return text.lstrip()[:1] == "{" and bool(MARKER.search(text[:20000]))


def _load(text: str) -> dict | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    body = text[start:end + 1]
    for candidate in (body, _FOLD.sub("", body)):
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict):
            inner = data.get("Message")
            if isinstance(inner, str) and "notificationType" in inner:
                try:
                    data = json.loads(inner)
                except ValueError:
                    return None
            return data if isinstance(data, dict) else None
    return None


def _text(value: object) -> str | None:
    """A field the notification gives as a string; None when it holds a number, list... instead."""
    return value if isinstance(value, str) else None


def _strip_type(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    head, sep, tail = value.partition(";")
    return squash(tail if sep and " " not in head.strip() else value)


def read_ses(text: str) -> list[dict]:
    """One event dict per recipient of an SES Bounce or Delivery notification."""
    data = _load(text)
    if not data:
        return []
    kind = data.get("notificationType")
    out: list[dict] = []
    if kind == "Bounce" and isinstance(data.get("bounce"), dict):
        bounce = data["bounce"]
        summary = f"Amazon SES {bounce.get('bounceType') or ''} bounce: {bounce.get('bounceSubType') or ''}"
        for rec in bounce.get("bouncedRecipients") or []:
            if not isinstance(rec, dict):
                continue
            address = clean_address(str(rec.get("emailAddress") or ""))
            if not is_address(address):
                continue
            out.append({
                "recipient": address,
                "action": str(rec.get("action") or "failed").lower(),
                "status": status_field(str(rec.get("status") or "")),
                "diagnostic": _strip_type(rec.get("diagnosticCode")) or summary.strip(),
                "diagnostic_type": "smtp" if rec.get("diagnosticCode") else None,
                "reporting_mta": _strip_type(bounce.get("reportingMTA")),
                "remote_mta": _strip_type(bounce.get("remoteMtaIp")),
                "last_attempt_date": _text(bounce.get("timestamp")),
            })
    elif kind == "Delivery" and isinstance(data.get("delivery"), dict):
        delivery = data["delivery"]
        for rcpt in delivery.get("recipients") or []:
            address = clean_address(str(rcpt))
            if not is_address(address):
                continue
            out.append({
                "recipient": address,
                "action": "delivered",
                "diagnostic": _strip_type(delivery.get("smtpResponse")),
                "reporting_mta": _strip_type(delivery.get("reportingMTA")),
                "remote_mta": _strip_type(delivery.get("remoteMtaIp")),
                "last_attempt_date": _text(delivery.get("timestamp")),
            })
    return out
