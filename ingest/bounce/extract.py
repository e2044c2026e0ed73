"""Reading the recipients of a bounce: the RFC 3464 delivery-status part first."""
from __future__ import annotations

import email.message
import re

from ingest.bounce.classify import classify
from ingest.config import IngestConfig
from ingest.message import header_text, part_text
from ingest.types import BounceEvent, ParseResult

BOUNCE_FROM = re.compile(r"mailer-daemon|postmaster|mail delivery|mail administrator", re.I)
BOUNCE_SUBJECT = re.compile(r"undeliver|delivery (status|failure|notification)|returned mail|"
                            r"failure notice|could not be delivered|mail delivery failed", re.I)


def looks_like_bounce(msg: email.message.Message) -> bool:
    sender = header_text(msg, "From") or ""
    subject = header_text(msg, "Subject") or ""
    return bool(BOUNCE_FROM.search(sender) or BOUNCE_SUBJECT.search(subject))


def _fields(block: str) -> dict[str, str]:
    out: dict[str, str] = {}
    last = None
    for line in block.split("\n"):
        if line[:1] in (" ", "\t") and last:
            out[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep and name.strip():
            last = name.strip().lower()
            out.setdefault(last, value.strip())
    return out


def _address(value: str | None) -> str | None:
    if not value:
        return None
    value = value.split(";", 1)[-1].strip().strip("<>").strip()
    return value.lower() or None


def parse_bounce(msg: email.message.Message, config: IngestConfig, envelope: dict | None = None) -> ParseResult:
    events: list[BounceEvent] = []
    for part in msg.walk():
        if part.get_content_type() not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            text = "\n\n".join(str(p) for p in payload)
        else:
            text = part_text(part)
        blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
        per_message = _fields(blocks[0]) if blocks else {}
        for block in blocks[1:] if len(blocks) > 1 else blocks:
            f = _fields(block)
            rcpt = _address(f.get("final-recipient") or f.get("original-recipient"))
            if not rcpt:
                continue
            diag = f.get("diagnostic-code", "")
            diag = diag.split(";", 1)[1].strip() if ";" in diag else diag
            code = re.match(r"([245]\d\d)\b", diag or "")
            ev: BounceEvent = {
                "recipient": rcpt,
                "action": (f.get("action") or "").lower() or None,
                "status": (f.get("status") or "").split()[0] if f.get("status") else None,
                "reply_code": code.group(1) if code else None,
                "diagnostic": diag or None,
                "remote_mta": _address(f.get("remote-mta")),
                "reporting_mta": _address(per_message.get("reporting-mta")),
            }
            ev.update(classify(ev))
            events.append(ev)
    if not events:
        return ParseResult(kind="bounce", error="bounce names no recipient")
    return ParseResult(kind="bounce", events=events)
