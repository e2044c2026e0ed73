"""KumoMTA's JSON log records, one object per line:

    {"type": "Bounce", "id": "…", "sender": "news@example.com", "recipient": "ann@example.net",
     "queue": "december-news:acme@example.net", "site": "…", "size": 4120,
     "response": {"code": 550, "enhanced_code": {"class": 5, "subject": 1, "detail": 1},
                  "content": "5.1.1 <ann@example.net>: Recipient address rejected: User unknown",
                  "command": "RCPT TO:<ann@example.net>\\r\\n"},
     "peer_address": {"name": "mx.example.net", "addr": "198.51.100.25"},
     "timestamp": 1765011602, "egress_pool": "pool-a", "egress_source": "ip-18",
     "source_address": {"address": "192.0.2.18:0"}, "meta": {"campaign": "december-news"},
     "headers": {}, "feedback_report": null, ...}

`Delivery` is a send; `Bounce`, `AdminBounce` and `OOB` failures; `Expiration` an expired
message; `TransientFailure` a delay; `Feedback` a complaint (its `feedback_report`);
`Reception` and the others are skipped.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from ingest.logs.records import LineError, LogRecord, ReadOptions, read_lines
from ingest.logs.timestamps import rfc3339

OUTCOMES = {"Delivery": "sent", "Bounce": "bounced", "AdminBounce": "bounced", "OOB": "bounced",
            "Expiration": "expired", "TransientFailure": "deferred", "Feedback": "complaint"}


class KumoReader:
    def __init__(self, options: ReadOptions) -> None:
        self.options = options
        self.campaign = options.campaign_field

    def feed(self, lineno: int, line: str) -> list[LogRecord] | LineError | None:
        if not line.strip():
            return None
        try:
            rec = json.loads(line)
        except ValueError as exc:
            return LineError(lineno, f"not a JSON object ({exc})", line)
        if not isinstance(rec, dict):
            return LineError(lineno, "not a JSON object", line)
        outcome = OUTCOMES.get(rec.get("type"))  # type: ignore[arg-type]
        if outcome is None:
            return None
        when = _when(rec.get("timestamp"))
        if when is None:
            return LineError(lineno, f"timestamp {rec.get('timestamp')!r} is not a time", line)
        response = _object(rec.get("response"))
        code = response.get("code")
        enhanced = response.get("enhanced_code")
        status = None
        if isinstance(enhanced, dict) and enhanced.get("class") is not None:
            status = f"{enhanced.get('class')}.{enhanced.get('subject', 0)}.{enhanced.get('detail', 0)}"
        content = response.get("content")
        command = response.get("command")
        peer = _object(rec.get("peer_address"))
        meta = _object(rec.get("meta"))
        campaign = _text(meta.get(self.campaign)) or _queue_campaign(rec.get("queue"))
        record = LogRecord(
            outcome, when, line, lineno, recipient=_text(rec.get("recipient")), sender=_text(rec.get("sender")),
            message_id=_message_id(rec.get("headers")), sending_ip=_source_ip(rec) or self.options.sending_ip,
            remote_mta=_text(peer.get("name")), status=status,
            reply_code=str(code) if isinstance(code, int) and 200 <= code < 600 else None,
            diagnostic=_text(content), campaign=campaign, pool=_text(rec.get("egress_pool")),
            mta_category=_classification(rec.get("bounce_classification")),
            smtp_command=command.split(None, 1)[0].split(":", 1)[0].upper()[:16] if isinstance(command, str) and command.strip() else None)
        if outcome == "complaint":
            report = _object(rec.get("feedback_report"))
            record.feedback_type = _text(report.get("feedback_type")) or "abuse"
            record.sending_ip = _text(report.get("source_ip")) or record.sending_ip
        return [record]


def _classification(value: Any) -> str | None:
    """KumoMTA's bounce class as a sending MTA's category ('kumomta:invalidrecipient', mapped in
    rules.toml's [mta_category]); 'Uncategorized' (no classifier rule matched) says nothing."""
    text = _text(value)
    return None if text is None or text.lower() == "uncategorized" else f"kumomta:{text.lower()}"


def _when(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        return rfc3339(value)
    return None


def _object(value: Any) -> dict:
    """A field that should hold an object; {} when it holds anything else (or is missing)."""
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _queue_campaign(queue: Any) -> str | None:
    """'campaign:tenant@domain' -> 'campaign' (KumoMTA's scheduled-queue name)."""
    if not isinstance(queue, str) or ":" not in queue.split("@", 1)[0]:
        return None
    return queue.split(":", 1)[0] or None


def _source_ip(rec: dict) -> str | None:
    src = rec.get("source_address")
    address = src.get("address") if isinstance(src, dict) else src if isinstance(src, str) else None
    if not address:
        return None
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    return host.strip("[]") or None


def _message_id(headers: Any) -> str | None:
    if not isinstance(headers, dict):
        return None
    for k, v in headers.items():
        if k.lower() == "message-id" and isinstance(v, str):
            return v.strip().strip("<>") or None
    return None


def read(lines: Iterable[str], options: ReadOptions) -> Iterator[LogRecord | LineError]:
    return read_lines(KumoReader(options), lines)
