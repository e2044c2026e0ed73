"""A DMARC failure report read by parsedmarc's rules, for a caller that keeps only its summary.

`postwatch parse` prints a failure report's summary (`reports.failure_summary`), never the
full report the store keeps. Importing parsedmarc costs ~0.5 s of CPU: most of a run over a
folder of bounces and complaints that holds a few failure reports. Its failure-report path
needs only mailparser, dateutil and the email package, which load in a fraction of that.

`read_failure` follows parsedmarc's steps for a report mail (parse_report_email,
parse_failure_report, utils.parse_email) with those same libraries, and returns the fields
the summary is made of. Whenever parsedmarc would take another path (an outlook message,
another report inside, the plain-text Exim form, a report without an arrival date, a source
address it would not look up as given) or could fail, it returns None and the caller asks
parsedmarc itself, so the summary is always parsedmarc's. The rules are those of the
parsedmarc release in READS_LIKE; with another release installed, it always returns None.
tests/ingest/test_failure_reader.py compares both readers on every failure report of the
corpus and the samples, and on variations of them.
"""
from __future__ import annotations

import binascii
import email
import email.errors
import email.message
import email.utils
import ipaddress
import json
import quopri
import re
from base64 import b64decode
from datetime import timezone
from importlib.util import find_spec
from pathlib import Path
from typing import Any

READS_LIKE = ("11.1.",)  # the parsedmarc releases whose failure-report rules are followed here

# parsedmarc's own patterns and lists (parsedmarc/__init__.py)
_FEEDBACK_FIELD = re.compile(r"^([\w\-]+): ([^\r\n]+)\r?$", re.MULTILINE)
_SAMPLE_TYPES = ("text/rfc822", "text-rfc-822", "text/rfc822-headers", "text/rfc-822-headers", "message/rfc822",
                 "message/rfc-822", "message/rfc822-headers", "message/rfc-822-headers")
_DELIVERY_RESULTS = ("delivered", "spam", "policy", "reject", "other")
_OUTLOOK_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC, _GZIP_MAGIC = b"PK\x03\x04", b"\x1f\x8b"
_TEXT_FAILURE = "A message claiming to be from you has failed"


class _Other(Exception):
    """parsedmarc would read this some other way, or fail: leave it to parsedmarc."""


_mirrors: bool | None = None


def mirrors() -> bool:
    """Whether the installed parsedmarc is a release whose rules are followed here (read from
    its source, without importing it)."""
    global _mirrors
    if _mirrors is None:
        spec = find_spec("parsedmarc")
        where = list(spec.submodule_search_locations or []) if spec else []
        try:
            text = (Path(where[0]) / "constants.py").read_text("utf-8") if where else ""
        except OSError:
            text = ""
        found = re.search(r"^__version__ = \"([^\"]+)\"", text, re.M)
        _mirrors = bool(found) and found.group(1).startswith(READS_LIKE)
    return _mirrors


def read_failure(raw: bytes) -> dict[str, Any] | None:
    """The fields of parsedmarc's failure report that `reports.failure_summary` reads, for a
    report mail (newlines normalised); None when parsedmarc must read it."""
    if not mirrors():
        return None
    try:
        return _read(raw)
    except _Other:
        return None
    except Exception:  # parsedmarc raises here too, and says why: let it
        return None


def _mailparser():
    import logging

    import mailparser

    logging.getLogger("mailparser").setLevel(logging.CRITICAL)  # as parsedmarc does on import
    return mailparser


def _read(raw: bytes) -> dict[str, Any]:
    mailparser = _mailparser()
    if raw.startswith(_OUTLOOK_MAGIC):
        raise _Other("outlook message")
    input_str = raw.decode("utf8", errors="replace")
    headers = json.loads(mailparser.parse_from_string(input_str).headers_json)
    if "Date" not in headers:
        raise _Other("the arrival date would be the time of reading")
    msg_date = _human_timestamp_to_datetime(headers["Date"])
    email.utils.format_datetime(msg_date)
    msg = email.message_from_string(input_str)

    feedback_report = sample = None
    is_feedback_report = False
    for part in msg.walk():
        content_type = part.get_content_type().lower()
        payload_obj = part.get_payload()
        if not isinstance(payload_obj, list):
            payload_obj = [payload_obj]
        payload = str(payload_obj[0])
        if content_type.startswith("multipart/") or content_type == "text/html":
            continue
        if content_type == "message/feedback-report":
            is_feedback_report = True
            decoded_payload = _decode_mime_payload(part, payload)
            try:
                if "Feedback-Type" in decoded_payload:
                    feedback_report = decoded_payload
                else:
                    feedback_report = b64decode(decoded_payload).__str__()
                feedback_report = feedback_report.lstrip("b'").rstrip("'")
                feedback_report = feedback_report.replace("\\r", "")
                feedback_report = feedback_report.replace("\\n", "\n")
            except (ValueError, TypeError, binascii.Error):
                feedback_report = decoded_payload
        elif is_feedback_report and content_type in _SAMPLE_TYPES:
            sample = _decode_mime_payload(part, payload)
        elif content_type in ("application/tlsrpt+json", "application/tlsrpt+gzip"):
            raise _Other("an SMTP TLS report")
        elif content_type == "text/plain":
            if _TEXT_FAILURE in payload:
                raise _Other("the plain-text form")
        else:
            try:
                payload_bytes = b64decode(payload)
            except (TypeError, ValueError, binascii.Error):
                continue  # not base64: parsedmarc walks on
            if payload_bytes.startswith((_ZIP_MAGIC, _GZIP_MAGIC)):
                raise _Other("a compressed attachment")
            text = payload_bytes.decode("utf-8", errors="replace").strip()
            if text.startswith(("{", "<")):
                raise _Other("an aggregate or TLS report")
    if not (feedback_report and sample):
        raise _Other("not a failure report")
    return _failure_report(feedback_report, sample, msg_date)


def _failure_report(feedback_report: str, sample: str, msg_date) -> dict[str, Any]:
    """parse_failure_report, for the fields of the summary (offline, no IP address data)."""
    report: dict[str, Any] = {}
    for name, value in _FEEDBACK_FIELD.findall(feedback_report):
        report[name.lower().replace("-", "_")] = value
    if "arrival_date" not in report:
        report["arrival_date"] = msg_date.isoformat()
    if "delivery_result" not in report:
        report["delivery_result"] = None
    else:
        for result in _DELIVERY_RESULTS:
            if result in report["delivery_result"].lower():
                report["delivery_result"] = result
                break
    if report["delivery_result"] not in _DELIVERY_RESULTS:
        report["delivery_result"] = "other"
    arrival = _human_timestamp_to_datetime(report["arrival_date"], to_utc=True)
    report["arrival_date_utc"] = arrival.strftime("%Y-%m-%d %H:%M:%S")
    address = re.split(r"\s", report["source_ip"]).pop(0).lower()
    if str(ipaddress.ip_address(address)) != address:
        raise _Other("an address parsedmarc's database reader may read otherwise")
    report["source"] = {"ip_address": address}
    report["auth_failure"] = [f.strip() for f in report.get("auth_failure", "dmarc").split(",") if f.strip()]
    report.setdefault("feedback_type", "auth-failure")
    for name in ("original_mail_from", "original_rcpt_to"):
        report.setdefault(name, None)
    parsed_sample = _parse_email(sample)
    if "reported_domain" not in report:
        sample_from = parsed_sample.get("from")
        if not isinstance(sample_from, dict) or not sample_from.get("domain"):
            raise _Other("no reported domain")
        report["reported_domain"] = sample_from["domain"]
    report["parsed_sample"] = parsed_sample
    return report


def _parse_email(data: str) -> dict[str, Any]:
    """utils.parse_email, for the sample's From and Subject (and what could fail before them)."""
    parsed = _mailparser().parse_from_string(data)
    headers = json.loads(parsed.headers_json).copy()
    parsed_email = json.loads(parsed.mail_json).copy()
    parsed_email["headers"] = headers
    for received in parsed_email.get("received", ()):
        if "date_utc" in received and received["date_utc"] is not None:
            received["date_utc"].replace("T", " ")
    if "from" not in parsed_email:
        parsed_email["from"] = parsed_email["headers"].get("From") or None
    if parsed_email["from"] is not None:
        parsed_email["from"] = _parse_email_address(parsed_email["from"][0])
    if "date" in parsed_email:
        parsed_email["date"].replace("T", " ")
    for key in ("reply-to", "to", "cc", "bcc", "delivered-to"):
        for address in parsed_email.get(key, ()):
            _parse_email_address(address)
    if "subject" not in parsed_email:
        parsed_email["subject"] = None
    _filename_safe(parsed_email["subject"])
    return parsed_email


def _parse_email_address(original_address) -> dict[str, str | None]:
    """utils.parse_email_address."""
    display_name = None if original_address[0] == "" else original_address[0]
    address = original_address[1]
    parts = address.split("@")
    local = domain = None
    if len(parts) > 1:
        local = parts[0].lower()
        domain = parts[-1].lower()
    return {"display_name": display_name, "address": address, "local": local, "domain": domain}


def _filename_safe(string: str | None) -> str:
    """The steps of utils.get_filename_safe_string that could fail."""
    string = "None" if string is None else string
    for char in ("\\", "/", ":", '"', "*", "?", "|", "\n", "\r", "\x00"):
        string = string.replace(char, "")
    return string[:100].encode("utf-8", errors="ignore")[:100].decode("utf-8", errors="ignore")


def _human_timestamp_to_datetime(human_timestamp: str, *, to_utc: bool = False):
    """utils.human_timestamp_to_datetime."""
    from dateutil.parser import parse as parse_date

    human_timestamp = human_timestamp.replace("-0000", "")
    human_timestamp = _strip_comments(human_timestamp).strip()
    dt = parse_date(human_timestamp)
    return dt.astimezone(timezone.utc) if to_utc else dt


def _strip_comments(value: str) -> str:
    """utils._strip_comments: RFC 5322 comments out, nested ones and quoted-pairs included."""
    out: list[str] = []
    depth = 0
    escaped = False
    for char in value:
        if depth:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
        elif char == "(":
            depth = 1
        else:
            out.append(char)
    return "".join(out)


def _decode_mime_payload(part: email.message.Message, fallback: str) -> str:
    """parsedmarc's _decode_mime_payload."""
    try:
        cte = (part.get("Content-Transfer-Encoding") or "").strip().lower()
        if cte not in ("quoted-printable", "base64"):
            return fallback
        payload_bytes = part.get_payload(decode=True)
        if isinstance(payload_bytes, bytes):
            charset = part.get_content_charset() or "utf-8"
            try:
                return payload_bytes.decode(charset, errors="replace")
            except LookupError:
                return payload_bytes.decode("utf-8", errors="replace")
        text = fallback
        child = part.get_payload()
        if isinstance(child, list) and child:
            child = child[0]
        if isinstance(child, email.message.Message) and any(
                isinstance(defect, email.errors.MissingHeaderBodySeparatorDefect) for defect in child.defects):
            text = fallback.replace("\n\n", "\n", 1)
        if cte == "quoted-printable":
            return quopri.decodestring(text.encode("utf-8", errors="replace")).decode("utf-8", errors="replace")
        return b64decode(text).decode("utf-8", errors="replace")
    except Exception:
        return fallback
