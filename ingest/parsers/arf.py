"""ARF complaint reports (RFC 5965)."""
from __future__ import annotations

import email.message

from ingest.config import IngestConfig
from ingest.message import part_text
from ingest.types import ParseResult


def _feedback_part(msg: email.message.Message) -> email.message.Message | None:
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            return part
    return None


def _fields(part: email.message.Message) -> dict[str, str]:
    payload = part.get_payload()
    text = str(payload[0]) if isinstance(payload, list) else part_text(part)
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out.setdefault(name.strip().lower(), value.strip())
    return out


def feedback_type_of(msg: email.message.Message) -> str | None:
    part = _feedback_part(msg)
    return _fields(part).get("feedback-type", "").lower() or None if part is not None else None


def looks_like_complaint(msg: email.message.Message) -> bool:
    return False


def parse_arf(msg: email.message.Message, config: IngestConfig) -> ParseResult:
    part = _feedback_part(msg)
    if part is None:
        return ParseResult(kind="complaint", error="complaint report has no feedback-report part")
    f = _fields(part)
    ev = {"recipient": f.get("original-rcpt-to"), "feedback_type": f.get("feedback-type", "abuse").lower(),
          "source_ip": f.get("source-ip"), "reported_domain": f.get("reported-domain"),
          "user_agent": f.get("user-agent"), "arrival_date": f.get("arrival-date")}
    return ParseResult(kind="complaint", events=[ev])
