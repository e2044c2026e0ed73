"""RFC 3464 (and RFC 6533 global) delivery-status fields: per-message, then per-recipient.

Real DSNs bend the grammar: recipients without a blank line between them, folded
Diagnostic-Code lines, `Status: 553 text`, addresses without `rfc822;`. A new recipient
starts at each Final-Recipient (or Original-Recipient) once the current one has a name.
"""
from __future__ import annotations

import re

from ingest.bounce.smtp import clean_address, is_address, squash, status_field

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient", "x-actual-recipient")
_PER_MESSAGE = ("reporting-mta", "received-from-mta", "arrival-date", "original-envelope-id",
                "x-postfix-queue-id", "x-postfix-sender", "x-original-message-id")


def fields(text: str) -> list[tuple[str, str]]:
    """(lower-case name, unfolded value) for every field line, in order."""
    out: list[tuple[str, list[str]]] = []  # a value's pieces, joined once (a long fold costs its length)
    for line in text.split("\n"):
        if not line.strip():
            out.append(("", []))  # keeps the block structure visible
            continue
        if line[0] in " \t":
            if out and out[-1][0]:
                out[-1][1].append(line.strip())
            continue
        m = _FIELD.match(line)
        if m:
            out.append((m.group(1).lower(), [m.group(2).strip()]))
    return [(name, " ".join(pieces)) for name, pieces in out]


def _mta(value: str | None) -> str | None:
    if not value:
        return None
    value = value.split(";", 1)[1] if ";" in value else value
    value = value.strip().strip("[]").split()
    return value[0].strip("[]").rstrip(".").lower() if value else None


def read_dsn(text: str) -> tuple[dict[str, str], list[dict[str, str | None]]]:
    """The per-message fields and one dict per recipient of a delivery-status body."""
    per_message: dict[str, str] = {}
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for name, value in fields(text):
        if not name:
            if current.get("final-recipient") or current.get("original-recipient"):
                records.append(current)
                current = {}
            continue
        if name in _PER_MESSAGE and not records and not (
                current.get("final-recipient") or current.get("original-recipient")):
            per_message.setdefault(name, value)
            continue
        if name in ("final-recipient", "original-recipient") and current.get(name):
            records.append(current)
            current = {}
        current.setdefault(name, value)
    if current.get("final-recipient") or current.get("original-recipient"):
        records.append(current)
    return per_message, [_recipient(r, per_message) for r in records]


def _recipient(rec: dict[str, str], per_message: dict[str, str]) -> dict[str, str | None]:
    final = clean_address(rec.get("final-recipient"))
    original = clean_address(rec.get("original-recipient"))
    actual = clean_address(rec.get("x-actual-recipient"))
    # The address the sender used (ORCPT) is the one to act on; aliases expand behind it.
    recipient = original if is_address(original) else final if is_address(final) else (
        actual if is_address(actual) else final or original)
    diag_type, diagnostic = None, rec.get("diagnostic-code") or ""
    head, sep, tail = diagnostic.partition(";")
    if sep and " " not in head.strip() and len(head.strip()) < 20:
        diag_type, diagnostic = head.strip().lower(), tail
    raw_status = rec.get("status") or ""
    status = status_field(raw_status)
    if not status and raw_status and not diagnostic:
        diagnostic = raw_status  # "Status: 553 Exceeded maximum inbound message size"
    action = (rec.get("action") or "").strip().lower().split(" ", 1)[0] or None
    return {
        "recipient": recipient,
        "final_recipient": final if final != recipient else None,
        "action": action,
        "status": status,
        "diagnostic": squash(diagnostic) or None,
        "diagnostic_type": diag_type,
        "remote_mta": _mta(rec.get("remote-mta") or rec.get("x-remote-mta")),
        "reporting_mta": _mta(per_message.get("reporting-mta")),
        "arrival_date": rec.get("arrival-date") or per_message.get("arrival-date") or None,
        "last_attempt_date": rec.get("last-attempt-date") or None,
        # PowerMTA's own verdict on the reply (its bounce-category classification)
        "mta_category": (rec.get("x-powermta-bouncecategory") or "").strip().lower() or None,
    }
