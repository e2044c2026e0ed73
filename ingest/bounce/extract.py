"""Reading the recipients of a bounce: who bounced, what the receiver said, and where.

One walk over the message sorts its parts: delivery-status fields (RFC 3464/6533), the
human-readable text, and the returned original. The delivery-status part is trusted for
who and the status when it is sound; the text is read for the receiver's own words, which
many MTAs put only there; a bounce without a delivery-status part is read from its text.
"""
from __future__ import annotations

import email.message
import re
from email.utils import getaddresses, parsedate_to_datetime

from ingest.bounce import formats
from ingest.bounce.classify import classify
from ingest.bounce.dsn import read_dsn
from ingest.bounce.smtp import (
    clean_address, find_command, find_reply_code, find_status, is_address, unfold,
)
from ingest.bounce.text import Block, block_text, cut_returned, read_blocks
from ingest.config import IngestConfig
from ingest.message import header_text, part_text
from ingest.types import BounceEvent, ParseResult

BOUNCE_FROM = re.compile(r"mailer-daemon|postmaster|mail delivery|mail administrator|"
                         r"mail ?delivery ?(?:sub)?system|mdaemon|mail-?daemon", re.I)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status|failure|notification|failed|has failed|report|problem)|"
    r"returned mail|failure notice|could not be delivered|mail delivery failed|non[- ]?delivery|"
    r"delivery failure|mail (?:error|system error)|message not delivered|not delivered|"
    r"rejected|nicht zustellbar|fehlgeschlagen|unzustellbar|non remis|no entregado|"
    r"warning: could not send|failed mail|mail failure|delayed mail|delivery delayed|"
    r"\bbounced?\b|error sending|send failure", re.I)
NOT_A_BOUNCE_SUBJECT = re.compile(r"^\s*(?:re|fwd?|aw|tr|sv)\s*:|auto(?:matic)?[ -]?(?:reply|response)|"
                                  r"out of (?:the )?office|vacation|abwesen", re.I)

DSN_TYPES = frozenset(("message/delivery-status", "message/global-delivery-status",
                       "message/x-delivery-status"))
RETURNED_TYPES = frozenset(("message/rfc822", "text/rfc822-headers", "message/rfc822-headers",
                            "message/global", "message/global-headers", "message/partial",
                            "text/rfc822"))
_TAG = re.compile(r"<(?:br|p|div|tr|li|h\d)\b[^>]*>|</(?:p|div|tr|li|h\d|table)>", re.I)
_ANY_TAG = re.compile(r"<[^>]*>")
_ENTITY = {"&nbsp;": " ", "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'"}
_ENTITY_RE = re.compile("|".join(_ENTITY))
_RETURNED_SENDER = re.compile(r"^(?:From|Return-Path|Sender):[ \t]*(.*)$", re.M | re.I)
_REMOTE_MTA = (
    re.compile(r"\bhost\s+([A-Za-z0-9][\w.-]*\.[A-Za-z]{2,})\.?\s*\[[\d.:a-fA-F]+\]", re.I),  # Postfix, Exim
    re.compile(r"\b(?:while talking to|by|from|connecting to|server for the recipient domain \S+ by)\s+"
               r"([A-Za-z0-9][\w-]*(?:\.[\w-]+)+\.[A-Za-z]{2,})\.?\s*(?:\[[\d.:a-fA-F]+\]|:|\.\s)", re.I),
    re.compile(r"\bremote host\s+(\d{1,3}(?:\.\d{1,3}){3})\s+said", re.I),  # qmail
    re.compile(r"^([A-Za-z0-9][\w-]*(?:\.[\w-]+)+\.[A-Za-z]{2,})\s*\[[\d.]+\]\s+did not like", re.I),  # DMA
)
MAX_DIAGNOSTIC = 2000


def looks_like_bounce(msg: email.message.Message) -> bool:
    """True for a delivery report that has no delivery-status part to show for it.

    ARF, DMARC and TLS reports are recognised before this runs (ingest/detect.py); an RFC 3834
    auto-reply from a person's mailbox is not a bounce even though it is automatic.
    """
    subject = header_text(msg, "Subject") or ""
    if msg.get("X-Failed-Recipients") is not None:
        return True
    sender = header_text(msg, "From") or ""
    from_daemon = bool(BOUNCE_FROM.search(sender)) or (msg.get("Return-Path") or "").strip() == "<>" and \
        bool(BOUNCE_SUBJECT.search(subject))
    if NOT_A_BOUNCE_SUBJECT.search(subject) and not from_daemon:
        return False
    return bool(BOUNCE_FROM.search(sender) or BOUNCE_SUBJECT.search(subject)) or formats.has_marker(msg)


class _Parts:
    """What one walk over a bounce finds."""

    __slots__ = ("dsn", "text", "html", "returned", "returned_text")

    def __init__(self) -> None:
        self.dsn: list[str] = []
        self.text: list[str] = []
        self.html: list[str] = []
        self.returned: email.message.Message | None = None
        self.returned_text: str = ""


def _walk(msg: email.message.Message) -> _Parts:
    found = _Parts()
    stack = [msg]
    while stack:
        part = stack.pop()
        ctype = part.get_content_type()
        if ctype in DSN_TYPES:
            found.dsn.append(_dsn_text(part))
            continue
        if ctype in RETURNED_TYPES and part is not msg:
            if found.returned is None and not found.returned_text:
                payload = part.get_payload()
                if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
                    found.returned = payload[0]
                else:
                    found.returned_text = part_text(part)
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, email.message.Message)]))
            continue
        if ctype == "text/plain" or ctype == "text/global" or (ctype.startswith("text/") and ctype != "text/html"
                                                               and part is msg):
            if (part.get("Content-Disposition") or "").lower().startswith("attachment") and found.text:
                continue
            found.text.append(part_text(part))
        elif ctype == "text/html":
            found.html.append(part_text(part))
        elif part is msg:
            found.text.append(part_text(part))
    return found


def _dsn_text(part: email.message.Message) -> str:
    payload = part.get_payload()
    if not isinstance(payload, list):
        return part_text(part)
    cte = (part.get("Content-Transfer-Encoding") or "").strip().lower()
    blocks = []
    for block in payload:
        if not isinstance(block, email.message.Message):
            continue
        lines = [f"{name}: {value}" for name, value in block.items()]
        body = block.get_payload()
        if isinstance(body, str) and body.strip():
            lines.append(body)
        blocks.append("\n".join(lines))
    text = "\n\n".join(blocks)
    if cte == "base64" and ":" not in text[:200]:
        return part_text(part)
    return text


def _html_text(html: str) -> str:
    text = _TAG.sub("\n", html)
    text = _ANY_TAG.sub("", text)
    return _ENTITY_RE.sub(lambda m: _ENTITY[m.group(0)], text)


def _senders(msg: email.message.Message, parts: _Parts, rest: str) -> frozenset[str]:
    """Addresses that sent the original: the bounce goes to them, they did not bounce."""
    values = [str(msg.get("To") or "")]
    if parts.returned is not None:
        values += [str(parts.returned.get(h) or "") for h in ("From", "Return-Path", "Sender")]
    else:
        values += _RETURNED_SENDER.findall(parts.returned_text or rest)
    out = set()
    for _, addr in getaddresses(values):
        addr = clean_address(addr)
        if addr and "@" in addr:
            out.add(addr)
    return frozenset(out)


def parse_bounce(msg: email.message.Message, config: IngestConfig, envelope: dict | None = None) -> ParseResult:
    parts = _walk(msg)
    full = "\n".join(parts.text) if parts.text else "\n".join(_html_text(h) for h in parts.html)
    human = cut_returned(full)
    senders = _senders(msg, parts, full[len(human):])

    records: list[dict] = []
    reporting = None
    for text in parts.dsn:
        per_message, recs = read_dsn(text)
        records.extend(r for r in recs if r.get("recipient"))
        reporting = reporting or per_message.get("reporting-mta")
    if not records and "-recipient:" in human.lower():
        _, recs = read_dsn(human)  # the fields pasted into the text
        records.extend(r for r in recs if is_address(r.get("recipient")))

    reader = formats.reader_for(msg, human, full)
    blocks = reader(human, senders, msg) if reader else read_blocks(human, senders)
    failed = _failed_recipients(msg)

    if records:
        events = [_from_record(r, blocks) for r in records]
    elif failed:
        events = [_from_header(a, blocks, human) for a in failed]
    else:
        events = [_from_block(b) for b in blocks]
    events = _dedupe(events)
    if not events:
        return ParseResult(kind="bounce", error="bounce names no recipient")
    out: list[BounceEvent] = []
    for ev in events:
        _finish(ev)
        ev.update(classify(ev))  # type: ignore[typeddict-item]
        out.append(ev)
    return ParseResult(kind="bounce", events=out)  # type: ignore[arg-type]


def _failed_recipients(msg: email.message.Message) -> list[str]:
    value = msg.get("X-Failed-Recipients")
    if not value:
        return []
    out = []
    for _, addr in getaddresses([str(value)]):
        addr = clean_address(addr)
        if is_address(addr) and addr not in out:
            out.append(addr)
    return out


def _block_for(recipient: str | None, blocks: list[Block], *others: str | None) -> Block | None:
    for name in (recipient, *others):
        if not name:
            continue
        for b in blocks:
            if b.recipient == name:
                return b
    if len(blocks) == 1 and recipient and "@" not in recipient:
        return blocks[0]
    return None


def _from_record(rec: dict, blocks: list[Block]) -> BounceEvent:
    ev: BounceEvent = dict(rec)  # type: ignore[assignment]
    block = _block_for(ev.get("recipient"), blocks, ev.get("original_recipient"))
    if block is not None:
        said = unfold(block_text(block.lines))
        dsn_diag = ev.get("diagnostic") or ""
        if said and (not dsn_diag or (not find_reply_code(dsn_diag) and find_reply_code(said))
                     or (not find_status(dsn_diag) and find_status(said) and len(dsn_diag) < 40)):
            ev["diagnostic"] = said
    return ev


def _from_header(address: str, blocks: list[Block], human: str) -> BounceEvent:
    block = _block_for(address, blocks)
    said = unfold(block_text(block.lines)) if block is not None else ""
    if not said:
        said = unfold(block_text(human.split("\n")))
    return {"recipient": address, "diagnostic": said or None}


def _from_block(block: Block) -> BounceEvent:
    return {"recipient": block.recipient, "diagnostic": unfold(block_text(block.lines)) or None}


def _dedupe(events: list[BounceEvent]) -> list[BounceEvent]:
    seen: dict[str, BounceEvent] = {}
    out = []
    for ev in events:
        rcpt = ev.get("recipient")
        if not rcpt:
            continue
        prior = seen.get(rcpt)
        if prior is None:
            seen[rcpt] = ev
            out.append(ev)
        else:  # the same recipient twice: keep the fuller account
            for key, value in ev.items():
                if value and not prior.get(key):
                    prior[key] = value  # type: ignore[literal-required]
    return out


def _finish(ev: BounceEvent) -> None:
    diag = ev.get("diagnostic") or ""
    if len(diag) > MAX_DIAGNOSTIC:
        diag = ev["diagnostic"] = diag[:MAX_DIAGNOSTIC]
    said_status = find_status(diag)
    status = ev.get("status")
    if said_status and (not status or (said_status[0] in "45" and said_status[2:] != "0.0"
                                        and said_status[0] == (status or said_status)[0])):
        status = said_status
    ev["status"] = status
    code = ev.get("reply_code") or find_reply_code(diag)
    if code and status and code[0] != status[0]:
        code = None
    ev["reply_code"] = code
    if not ev.get("smtp_command"):
        ev["smtp_command"] = find_command(diag)
    if not ev.get("remote_mta") and diag:
        for pattern in _REMOTE_MTA:
            m = pattern.search(diag)
            if m:
                ev["remote_mta"] = m.group(1).lower().rstrip(".")
                break
    if not ev.get("action") and status:
        ev["action"] = {"5": "failed", "4": "delayed", "2": "delivered"}.get(status[0])
    for key in ("arrival_date", "last_attempt_date"):
        ev[key] = _iso(ev.get(key))  # type: ignore[literal-required]
    for key in ("recipient", "original_recipient", "action", "status", "reply_code", "diagnostic",
                "diagnostic_type", "remote_mta", "reporting_mta", "smtp_command"):
        ev.setdefault(key, None)  # type: ignore[misc]


def _iso(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
