"""Complaint reports: ARF (RFC 5965) and the provider shapes that predate or bend it.

Shapes read here, each by its structure, never by one sender's file:
- RFC 5965 ARF: multipart/report with a message/feedback-report part (Yahoo CFL, AOL,
  Microsoft JMRP today, Return Path / Validity FBLs, abuse desks); the feedback part may be
  base64- or quoted-printable-encoded, and its fields folded;
- the older Microsoft JMRP and provider FBL mails: a plain mail from a known feedback-loop
  sender with the complained-about message attached as message/rfc822, the recipient in the
  provider's own header (X-HmXmrOriginalRecipient);
- Amazon SES complaint notifications (JSON, `notificationType: Complaint`);
- Apple Mail's one-click unsubscribe mail (`X-Apple-Unsubscribe: true`): an opt-out.
RFC 6591 `auth-failure` reports are DMARC failure reports; `failure_report_from_arf` gives
their summary when parsedmarc cannot read them.

One report gives one event (RFC 6650: one report per message), or one per distinct address
when its Original-Rcpt-To fields name several. The recipient is that address, else the
original message's To when it names exactly one, else Removal-Recipient or the delivery
headers of the original.
"""
from __future__ import annotations

import base64
import binascii
import email
import email.message
import json
import quopri
import re
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

from ingest.attribution import attribution_from
from ingest.config import IngestConfig
from ingest.headers import addresses
from ingest.message import header_text, part_text
from ingest.types import Attribution, ParseResult
from store.addresses import domain_of, split_address, try_normalise

FEEDBACK_TYPES = ("message/feedback-report",)
RETURNED_TYPES = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers",
                  "text/rfc822-header", "text/rfc822", "message/partial")
# Feedback-loop senders whose reports are not ARF: (From address suffix, feedback type,
# user agent). A mail from one of them with the complained-about message attached is a complaint.
LEGACY_FBL_SENDERS: tuple[tuple[str, str, str], ...] = (
    ("staff@hotmail.com", "abuse", "Microsoft Junk Mail Reporting Program"),
    ("@jmrp.microsoft.com", "abuse", "Microsoft Junk Mail Reporting Program"),
    ("complaints@email-abuse.amazonses.com", "abuse", "Amazon SES"),
    ("scomp@aol.net", "abuse", "AOL Feedback Loop"),
    ("feedback@arf.mail.yahoo.com", "abuse", "Yahoo! Mail Feedback"),
)
# headers the recipient's system adds to the returned message, naming who it was delivered to
DELIVERY_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "X-Rcpt-To")
_REDACTED_LOCAL = re.compile(r"^(redacted|x+|\*+|hashed|null|none|unknown|undisclosed.*|"
                             r"recipient|user|removed|\[?redacted\]?)$", re.I)
_IP = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7})\b", re.I)
_SUBJECT_IP = re.compile(r"complaint about message from\s+\[?([0-9a-f.:]+)", re.I)
_SES_COMPLAINT = re.compile(r'"(?:notificationType|eventType)"\s*:\s*"Complaint"')


# --- the parts of a report, found in one walk ----------------------------------------

class _Parts:
    """The report's own parts. The walk stops at an attached message: the complained-about
    message may hold parts that look like a report's, and those are not this report."""

    __slots__ = ("feedback", "returned", "text")

    def __init__(self, msg: email.message.Message) -> None:
        self.feedback: list[email.message.Message] = []
        self.returned: email.message.Message | None = None
        self.text: email.message.Message | None = None
        stack = [msg]
        while stack:
            part = stack.pop()
            payload = part.get_payload()
            if part.get_content_maintype() == "multipart" and isinstance(payload, list):
                stack.extend(reversed(payload))
                continue
            ctype = part.get_content_type()
            if ctype in FEEDBACK_TYPES:
                self.feedback.append(part)
            elif ctype in RETURNED_TYPES:
                if self.returned is None:
                    self.returned = part
            elif ctype == "text/plain" and self.text is None:
                self.text = part


def _report_of(msg: email.message.Message, parts: _Parts | None = None) -> tuple[email.message.Message, _Parts]:
    """The message that is the report, with its parts: `msg` itself, or a report forwarded
    whole as `msg`'s attachment (never when `msg` is a report or a feedback-loop mail itself).
    `parts`: `msg`'s own, when the caller has them already."""
    parts = _Parts(msg) if parts is None else parts
    if parts.feedback or parts.returned is None or msg.get_content_type() == "multipart/report":
        return msg, parts
    inner = _returned_headers(parts.returned)
    if inner is None or _legacy_fbl(msg) or _hotmail_recipient(inner):
        return msg, parts
    inner_parts = _Parts(inner)
    return (inner, inner_parts) if inner_parts.feedback else (msg, parts)


def _feedback_text(part: email.message.Message) -> str:
    """The feedback part's fields as text, whatever encoding and parse the part got."""
    cte = str(part.get("Content-Transfer-Encoding") or "").strip().lower()
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parses message/* bodies as messages
        sub = payload[0] if payload and isinstance(payload[0], email.message.Message) else None
        if sub is None:
            return ""
        head = "\n".join(f"{k}: {v}" for k, v in sub.items())
        body = sub.get_payload()
        body = body if isinstance(body, str) else ""
        text = f"{head}\n{body}" if head else body
    else:
        text = payload if isinstance(payload, str) else ""
    if cte == "base64":
        try:
            text = base64.b64decode(re.sub(r"\s+", "", text), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            text = ""  # undecodable: no fields rather than base64 read as fields
    elif cte == "quoted-printable":
        text = quopri.decodestring(text.encode("utf-8", "replace")).decode("utf-8", "replace")
    return text


def parse_fields(text: str) -> dict[str, list[str]]:
    """Header-style fields (folded lines joined), each name lower-cased, every value kept."""
    pieces: dict[str, list[list[str]]] = {}  # joined once at the end: a long fold costs its length
    last: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] in " \t" and last is not None:
            last.append(line.strip())
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name or " " in name:
            last = None
            continue
        last = [value.strip()]
        pieces.setdefault(name, []).append(last)
    return {name: [" ".join(p for p in value if p) for value in values] for name, values in pieces.items()}


def _first(fields: dict[str, list[str]], *names: str) -> str | None:
    for name in names:
        for value in fields.get(name, ()):
            if value:
                return value
    return None


def _fields_of(parts: _Parts) -> dict[str, list[str]] | None:
    """The fields of the first feedback part that has any; None without a feedback part.

    RFC 6650 allows one report per message, so a second feedback part is never a second report.
    """
    if not parts.feedback:
        return None
    for part in parts.feedback:
        fields = parse_fields(_feedback_text(part))
        if fields:
            return fields
    return {}


def _feedback_type(fields: dict[str, list[str]], default: str = "abuse") -> str:
    # Yahoo-style and Microsoft reports leave the field out; they are all abuse reports
    value = _first(fields, "feedback-type")
    token = value.split()[0].strip(";,\"'").lower() if value else ""
    return token or default


class Feedback(NamedTuple):
    """A message read as a complaint: the message that is the report (`msg`, or a report
    forwarded whole as its attachment), its parts, and its feedback part's fields (None
    without a feedback part). Detection reads it once; `parse_arf` goes on from it."""

    msg: email.message.Message
    parts: _Parts
    fields: dict[str, list[str]] | None

    @property
    def feedback_type(self) -> str | None:
        """The feedback type, lower-cased; None without a feedback part."""
        return None if self.fields is None else _feedback_type(self.fields)


def read_feedback(msg: email.message.Message, parts: _Parts | None = None) -> Feedback:
    report, found = _report_of(msg, parts)
    return Feedback(report, found, _fields_of(found))


# --- recognising the shapes that are not multipart/report ----------------------------

def _sender(msg: email.message.Message) -> str:
    addrs = addresses(str(msg.get("From") or ""))
    return addrs[0][1].strip().lower() if addrs else ""


def _legacy_fbl(msg: email.message.Message) -> tuple[str, str] | None:
    sender = _sender(msg)
    for suffix, ftype, agent in LEGACY_FBL_SENDERS:
        if sender.endswith(suffix):
            return ftype, agent
    return None


def _hotmail_recipient(original: email.message.Message) -> bool:
    return original.get("X-HmXmrOriginalRecipient") is not None


def _is_apple_unsubscribe(msg: email.message.Message) -> bool:
    return str(msg.get("X-Apple-Unsubscribe") or "").strip().lower() == "true"


def _ses_json(text_part: email.message.Message | None) -> dict | None:
    if text_part is None:
        return None
    text = part_text(text_part)
    if not _SES_COMPLAINT.search(text[:4000]):
        return None
    start = text.find("{")
    try:
        obj, _ = json.JSONDecoder(strict=False).raw_decode(text[start:])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def looks_like_complaint(msg: email.message.Message) -> Feedback | None:
    """A complaint that is not a multipart/report (legacy FBL, SES JSON, Apple unsubscribe):
    what was read of it, for `parse_arf`; None when `msg` is none of those."""
    parts = _Parts(msg)
    return read_feedback(msg, parts) if _strict_complaint(msg, parts) else None


def _strict_complaint(msg: email.message.Message, parts: _Parts) -> bool:
    if _is_apple_unsubscribe(msg):
        return True
    if parts.feedback:
        return True
    if parts.returned is not None:
        if _legacy_fbl(msg) and "complaint" in str(msg.get("Subject") or "").lower():
            return True
        inner = _returned_headers(parts.returned)
        if inner is not None and _hotmail_recipient(inner):
            return True
    if parts.text is not None:
        head = (str(msg.get("Subject") or "") + str(msg.get("From") or "")).lower()
        if "amazonses" in head or "aws notification" in head or msg.get("x-amz-sns-message-id") is not None:
            return _ses_json(parts.text) is not None
    return False


# --- values --------------------------------------------------------------------------

def iso_date(value: str | None) -> str | None:
    """An RFC 5322 date as ISO 8601 in UTC; the text itself when it is not a date."""
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return value.strip() or None
    if dt is None:
        return value.strip() or None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):
        return value.strip()


def _addresses(value: str | None) -> list[str]:
    """The addresses a field names, lower-cased, without `rfc822;` and angle brackets."""
    if not value:
        return []
    value = value.strip()
    if value.lower().startswith("rfc822;"):
        value = value[7:]
    found = [a.strip().strip("<>").strip().lower() for _, a in addresses(value) if a]
    if not found:
        found = [value.strip().strip("<>").strip().lower()]
    return [a for a in found if a]


def _address(value: str | None) -> str | None:
    found = _addresses(value)
    return found[0] if found else None


def _distinct(addrs) -> list[str]:
    """Each address once, in order; two spellings of one mailbox are one address."""
    seen: dict[str, str] = {}
    for addr in addrs:
        seen.setdefault(try_normalise(addr) or addr, addr)
    return list(seen.values())


def redacted(addr: str | None) -> bool:
    """True for a recipient a provider has hidden: no domain, or a placeholder local part."""
    if not addr or "@" not in addr:
        return True
    local, domain = split_address(addr)
    return not local or not domain or bool(_REDACTED_LOCAL.match(local.strip("<>\" ")))


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    found = _IP.search(value)
    return found.group(1) if found else value.strip().strip("[]") or None


def _mta(value: str | None) -> str | None:
    if not value:
        return None
    return value.split(";", 1)[1].strip() if ";" in value else value.strip()


def _returned_headers(part: email.message.Message | None) -> email.message.Message | None:
    if part is None:
        return None
    payload = part.get_payload()
    if isinstance(payload, list):
        inner = payload[0] if payload and isinstance(payload[0], email.message.Message) else None
        return inner
    if isinstance(payload, str) and payload.strip():
        raw = part.get_payload(decode=True) or payload.encode("utf-8", "replace")
        return email.message_from_bytes(raw.lstrip())
    return None


def _only_address(msg: email.message.Message, name: str) -> str | None:
    """The one address the header `name` names (in all its copies); None for none, several,
    or a hidden one: a list of recipients does not say which of them complained."""
    addrs = _distinct(a for value in msg.get_all(name) or () for a in _addresses(str(value)))
    addrs = [a for a in addrs if "@" in a]
    return addrs[0] if len(addrs) == 1 and not redacted(addrs[0]) else None


def _recipient_from(fields: dict[str, list[str]], original: email.message.Message | None) -> str | None:
    """The recipient when the report does not name it in Original-Rcpt-To."""
    if original is not None:
        for name in ("X-HmXmrOriginalRecipient", "To"):  # Microsoft names it in its own header
            addr = _only_address(original, name)
            if addr:
                return addr
    for value in fields.get("removal-recipient", ()):  # the opt-out report's field
        addr = _address(value)
        if addr and not redacted(addr):
            return addr
    if original is not None:
        for name in DELIVERY_HEADERS:
            addr = _only_address(original, name)
            if addr:
                return addr
    return None


# --- parsing -------------------------------------------------------------------------

def _event(fields: dict[str, list[str]], recipient: str | None, rcpt_to: str | None) -> dict[str, Any]:
    return {
        "recipient": recipient,
        "feedback_type": _feedback_type(fields),
        "source_ip": _ip(_first(fields, "source-ip")),
        "reported_domain": (_first(fields, "reported-domain") or "").lower() or None,
        "user_agent": _first(fields, "user-agent"),
        "version": _first(fields, "version"),
        "original_mail_from": _address(_first(fields, "original-mail-from")),
        "original_rcpt_to": rcpt_to,
        "arrival_date": iso_date(_first(fields, "arrival-date", "received-date")),
        "authentication_results": _first(fields, "authentication-results"),
        "reporting_mta": _mta(_first(fields, "reporting-mta")),
    }


def _arf_events(fields: dict[str, list[str]], original: email.message.Message | None) -> list[dict]:
    """One event per distinct named Original-Rcpt-To (a spam-trap report lists each trap),
    else one. Hidden values (redacted, `<>`, `local@`) cannot be told apart, so together they
    are one recipient, looked for elsewhere; Redacted-Address only hides one, never adds one."""
    rcpts = _distinct(a for v in fields.get("original-rcpt-to", ()) for a in _addresses(v))
    named = [a for a in rcpts if not redacted(a)]
    if named:
        return [_event(fields, addr, addr) for addr in named]
    hidden = next((a for a in rcpts if "@" in a), None)
    return [_event(fields, _recipient_from(fields, original), hidden)]


def _legacy_events(msg: email.message.Message, original: email.message.Message | None,
                   ftype: str, agent: str) -> list[dict]:
    subject_ip = _SUBJECT_IP.search(str(msg.get("Subject") or ""))
    source_ip = subject_ip.group(1) if subject_ip else None
    if source_ip is None and original is not None:
        source_ip = _ip(str(original.get("X-Originating-IP") or "")) or None
    sender = _address(str(original.get("From") or "")) if original is not None else None
    return [{"recipient": _recipient_from({}, original), "feedback_type": ftype, "source_ip": source_ip,
             "reported_domain": domain_of(sender) or None,
             "user_agent": agent, "version": None, "original_mail_from": None,
             "original_rcpt_to": None, "arrival_date": iso_date(header_text(msg, "Date")),
             "authentication_results": None, "reporting_mta": None}]


def _ses_events(obj: dict) -> tuple[list[dict], Attribution]:
    complaint = obj.get("complaint") or {}
    mail = obj.get("mail") or {}
    ftype = str(complaint.get("complaintFeedbackType") or "abuse").lower()
    named = (_address(str(r.get("emailAddress") or "")) for r in
             complaint.get("complainedRecipients") or () if isinstance(r, dict))
    events = []
    source = str(mail.get("source") or "") or None
    for addr in _distinct(a for a in named if a) or [None]:
        events.append({"recipient": addr, "feedback_type": ftype,
                       "source_ip": mail.get("sourceIp"),
                       "reported_domain": domain_of(source) or None,
                       "user_agent": complaint.get("userAgent"), "version": None,
                       "original_mail_from": _address(source), "original_rcpt_to": addr,
                       "arrival_date": complaint.get("arrivalDate") or complaint.get("timestamp"),
                       "authentication_results": None, "reporting_mta": None})
    attribution: Attribution = {}
    common = mail.get("commonHeaders") or {}
    if common.get("messageId"):
        attribution["message_id"] = str(common["messageId"])
    senders = common.get("from") or []
    if senders:
        addr = _address(str(senders[0]))
        if addr and "@" in addr:
            attribution["from_address"] = addr
            attribution["from_domain"] = domain_of(addr)
    if common.get("subject"):
        attribution["subject"] = str(common["subject"])
    return events, attribution


def parse_arf(msg: email.message.Message, config: IngestConfig, feedback: Feedback | None = None) -> ParseResult:
    """The complaint events of `msg`; `feedback` is what detection read of it already."""
    msg, parts, fields = feedback if feedback is not None else read_feedback(msg)
    original = _returned_headers(parts.returned)
    attribution = attribution_from(original)
    if fields is not None:
        if not fields:
            return ParseResult(kind="complaint", error="complaint report's feedback-report part is empty")
        events = _arf_events(fields, original)
        if original is not None and _hotmail_recipient(original):
            for ev in events:  # Microsoft's ARF leaves the agent out
                ev["user_agent"] = ev["user_agent"] or "Microsoft Junk Mail Reporting Program"
        return ParseResult(kind="complaint", events=events, attribution=attribution)
    if _is_apple_unsubscribe(msg):
        to = _address(header_text(msg, "To"))
        return ParseResult(kind="complaint", events=[{
            "recipient": _address(header_text(msg, "From")), "feedback_type": "opt-out",
            "source_ip": None, "reported_domain": domain_of(to) or None,
            "user_agent": "Apple Mail", "version": None, "original_mail_from": None,
            "original_rcpt_to": None, "arrival_date": iso_date(header_text(msg, "Date")),
            "authentication_results": None, "reporting_mta": None}])
    ses = _ses_json(parts.text)
    if ses is not None:
        events, ses_attr = _ses_events(ses)
        return ParseResult(kind="complaint", events=events, attribution=ses_attr)
    if original is not None:
        legacy = _legacy_fbl(msg) or (("abuse", "Microsoft Junk Mail Reporting Program")
                                      if _hotmail_recipient(original) else None)
        if legacy:
            return ParseResult(kind="complaint", events=_legacy_events(msg, original, *legacy),
                               attribution=attribution)
    return ParseResult(kind="complaint", error="complaint report has no feedback-report part "
                                               "and no known feedback-loop shape")


def failure_report_from_arf(msg: email.message.Message) -> dict[str, Any] | None:
    """The DMARC failure summary of an RFC 6591 report, read from its ARF fields."""
    _, parts = _report_of(msg)
    fields = _fields_of(parts)
    if not fields:
        return None
    original = _returned_headers(parts.returned)
    return {"feedback_type": _feedback_type(fields, "auth-failure"),
            "source_ip": _ip(_first(fields, "source-ip")),
            "reported_domain": (_first(fields, "reported-domain") or "").lower() or None,
            "arrival_date": iso_date(_first(fields, "arrival-date", "received-date")),
            "auth_failure": _first(fields, "auth-failure"),
            "delivery_result": _first(fields, "delivery-result"),
            "original_mail_from": _address(_first(fields, "original-mail-from")),
            "original_rcpt_to": _address(_first(fields, "original-rcpt-to")),
            "original_from": _address(header_text(original, "From")) if original is not None else None,
            "original_subject": header_text(original, "Subject") if original is not None else None}
