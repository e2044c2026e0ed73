"""What is wrong with a report that cannot be read, said about the report.

parsedmarc wraps whatever its readers raise in its own error, so its words are often a
Python exception's ("Unexpected error: 'NoneType' object is not subscriptable"). A
quarantine reason must tell the operator what is wrong with the input: these checks walk
the report's structure (RFC 7489 appendix C for aggregate XML, RFC 8460 for TLS JSON) and
name the first element or field that is missing or of the wrong kind.
"""
from __future__ import annotations

import email.message
import ipaddress
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from ingest.message import header_text, part_text

# Words that show a text is an exception's, not a description of the input.
PYTHON_WORDS = re.compile(
    r"Unexpected error|Traceback|\b[A-Z][A-Za-z]*(?:Error|Exception)\b|NoneType|object has no attribute"
    r"|object is not|not subscriptable|not iterable|indices must be|unsupported operand|invalid literal"
    r"|positional argument|unhashable|index out of range|<class '|argument of type|must be (?:str|int)")
# What parsedmarc says when one of its readers met an element of the wrong kind: true, but
# the structure tells which one.
VAGUE = re.compile(r"^Report missing required section$")
MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z: what a date can hold
TLS_POLICY_TYPES = ("tlsa", "sts", "no-policy-found")


class _Problem(Exception):
    """The first thing found wrong; its text is the reason."""


def describe(kind: str, text: str, said: str) -> str:
    """Why a report of `kind` ("dmarc_aggregate" or "smtp_tls") is not valid: parsedmarc's
    words `said` when they describe the input, else what the structure shows."""
    if said and not PYTHON_WORDS.search(said) and not VAGUE.search(said):
        return said
    problem = aggregate_problem(text) if kind == "dmarc_aggregate" else tls_problem(text)
    if problem:
        return problem
    if said and not PYTHON_WORDS.search(said) and not _KEY_ERROR.match(said.strip()):
        return said
    if kind == "dmarc_aggregate":
        return "its XML does not have the structure of a DMARC aggregate report (RFC 7489, appendix C)"
    return "its JSON does not have the structure of an SMTP TLS report (RFC 8460)"


# --- DMARC aggregate (XML) --------------------------------------------------------------

def _local(tag: Any) -> str:
    tag = tag if isinstance(tag, str) else ""
    return tag.rpartition("}")[2].rpartition(":")[2]


def _all(parent: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in parent if _local(c.tag) == name]


def _one(parent: ET.Element, name: str, where: str, required: bool = True) -> ET.Element | None:
    found = _all(parent, name)
    if not found:
        if required:
            raise _Problem(f"{where} has no <{name}>")
        return None
    if len(found) > 1:
        raise _Problem(f"{where} has {len(found)} <{name}> elements, where one is expected")
    return found[0]


def _text(el: ET.Element | None, where: str, required: bool = True) -> str:
    if el is None:
        return ""
    if len(el):
        raise _Problem(f"{where}'s <{_local(el.tag)}> holds elements, where text is expected")
    value = (el.text or "").strip()
    if required and not value:
        raise _Problem(f"{where}'s <{_local(el.tag)}> is empty")
    return value


def _number(el: ET.Element | None, where: str, low: int = 0, high: int | None = None) -> int:
    value = _text(el, where)
    head = value.split(".")[0]
    if not re.fullmatch(r"[+-]?\d+", head):
        raise _Problem(f"{where}'s <{_local(el.tag)}> is not a number: {value[:40]!r}")  # type: ignore[union-attr]
    number = int(head)
    if number < low or (high is not None and number > high):
        raise _Problem(f"{where}'s <{_local(el.tag)}> is out of range: {value[:40]}")  # type: ignore[union-attr]
    return number


def aggregate_problem(text: str) -> str | None:
    """The first thing wrong with an aggregate report's XML, or None when none is found."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        return f"its XML is not well-formed ({exc})"
    except ValueError as exc:  # e.g. an encoding declaration that a str cannot have
        return f"its XML cannot be read ({exc})"
    try:
        _check_aggregate(root)
    except _Problem as problem:
        return str(problem)
    return None


def _check_aggregate(root: ET.Element) -> None:
    if _local(root.tag) != "feedback":
        raise _Problem(f"its root element is <{_local(root.tag)}>, not <feedback>")
    meta = _one(root, "report_metadata", "the report")
    assert meta is not None
    org = _text(_one(meta, "org_name", "<report_metadata>", required=False), "<report_metadata>", False)
    email = _text(_one(meta, "email", "<report_metadata>", required=False), "<report_metadata>", False)
    if not org and not email:
        raise _Problem("<report_metadata> names no organisation (no <org_name> or <email>)")
    _text(_one(meta, "report_id", "<report_metadata>"), "<report_metadata>")
    dates = _one(meta, "date_range", "<report_metadata>")
    assert dates is not None
    begin = _number(_one(dates, "begin", "<date_range>"), "<date_range>", 0, MAX_TIME)
    end = _number(_one(dates, "end", "<date_range>"), "<date_range>", 0, MAX_TIME)
    if end < begin:
        raise _Problem("<date_range> ends before it begins")
    policies = _all(root, "policy_published")
    if not policies:
        raise _Problem("the report has no <policy_published>")
    policy = policies[0]
    _text(_one(policy, "domain", "<policy_published>"), "<policy_published>")
    _text(_one(policy, "p", "<policy_published>"), "<policy_published>")
    for name in ("adkim", "aspf", "sp", "pct", "fo", "np", "testing", "discovery_method"):
        _text(_one(policy, name, "<policy_published>", required=False), "<policy_published>", False)
    records = _all(root, "record")
    if not records:
        raise _Problem("the report has no <record>")
    for i, record in enumerate(records, 1):
        where = f"<record> {i}" if len(records) > 1 else "<record>"
        row = _one(record, "row", where)
        assert row is not None
        _text(_one(row, "source_ip", f"{where}'s <row>"), f"{where}'s <row>")
        _number(_one(row, "count", f"{where}'s <row>"), f"{where}'s <row>")
        evaluated = _one(row, "policy_evaluated", f"{where}'s <row>")
        assert evaluated is not None
        for name in ("disposition", "dkim", "spf"):
            _text(_one(evaluated, name, "<policy_evaluated>", required=False), "<policy_evaluated>", False)
        identifiers = _one(record, "identifiers", where)
        assert identifiers is not None
        _text(_one(identifiers, "header_from", f"{where}'s <identifiers>"), f"{where}'s <identifiers>")
        _one(record, "auth_results", where)


# --- SMTP TLS (JSON) --------------------------------------------------------------------

def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "true or false",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")


def _field(obj: dict, name: str, where: str, want: tuple[type, ...] | None, required: bool = True) -> Any:
    if name not in obj:
        if required:
            raise _Problem(f'{where} has no "{name}"')
        return None
    value = obj[name]
    if want is None:
        return value
    if not isinstance(value, want) or (isinstance(value, bool) and bool not in want):
        raise _Problem(f'{where}\'s "{name}" is {_kind(value)}, where {_kind(want[0]())} is expected')
    return value


def _count(obj: dict, name: str, where: str) -> None:
    value = _field(obj, name, where, (int, str))
    if isinstance(value, str) and not value.strip().isdigit():
        raise _Problem(f'{where}\'s "{name}" is not a number: {value[:40]!r}')
    if isinstance(value, int) and value < 0:
        raise _Problem(f'{where}\'s "{name}" is negative')


def tls_problem(text: str) -> str | None:
    """The first thing wrong with a TLS report's JSON, or None when none is found."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return f"it is not valid JSON ({exc})"
    except RecursionError:
        return "its JSON is nested too deeply to read"
    try:
        _check_tls(data)
    except _Problem as problem:
        return str(problem)
    return None


def _check_tls(data: Any) -> None:
    if not isinstance(data, dict):
        raise _Problem(f"it is {_kind(data)}, where a JSON object is expected")
    where = "the report"
    _field(data, "organization-name", where, (str,))
    _field(data, "contact-info", where, None)  # parsedmarc wants it there, of any kind
    _field(data, "report-id", where, (str, int))
    dates = _field(data, "date-range", where, (dict,))
    _field(dates, "start-datetime", '"date-range"', (str,))
    _field(dates, "end-datetime", '"date-range"', (str,))
    policies = _field(data, "policies", where, (list,))
    for i, item in enumerate(policies, 1):
        at = f"policy {i}"
        if not isinstance(item, dict):
            raise _Problem(f"{at} is {_kind(item)}, where an object is expected")
        policy = _field(item, "policy", at, (dict,))
        kind = _field(policy, "policy-type", f'{at}\'s "policy"', (str,))
        if kind not in TLS_POLICY_TYPES:
            raise _Problem(f'{at}\'s "policy-type" is {kind[:40]!r}, not one of {", ".join(TLS_POLICY_TYPES)}')
        _field(policy, "policy-domain", f'{at}\'s "policy"', (str,))
        for name in ("policy-string", "mx-host-pattern"):
            _field(policy, name, f'{at}\'s "policy"', (list,), required=False)
        summary = _field(item, "summary", at, (dict,))
        _count(summary, "total-successful-session-count", f'{at}\'s "summary"')
        _count(summary, "total-failure-session-count", f'{at}\'s "summary"')
        details = _field(item, "failure-details", at, (list,), required=False) or []
        for j, detail in enumerate(details, 1):
            there = f"{at}'s failure detail {j}"
            if not isinstance(detail, dict):
                raise _Problem(f"{there} is {_kind(detail)}, where an object is expected")
            _field(detail, "result-type", there, (str,))
            _count(detail, "failed-session-count", there)


# --- DMARC failure (RFC 6591 ARF, or Exim's plain text) -----------------------------------

_FAILURE_PREFIX = re.compile(r"^(?:Message with subject .*? is not a valid (?:failure DMARC )?report(?:: |$)"
                             r"|Unable to parse message with subject .*?: )", re.S)
# What is left of parsedmarc's words when they were a Python KeyError's: the key, quoted.
_KEY_ERROR = re.compile(r"^'[^']*'$")
_UNKNOWN_DATE = re.compile(r"^(?:Unexpected error: )?Unknown string format: (.*)", re.S)
_ONE_OF = ("feedback-type", "version", "user-agent", "source-ip", "reported-domain", "arrival-date",
           "received-date", "original-mail-from", "original-envelope-id", "delivery-result",
           "identity-alignment", "sender ip address", "sender domain")


def describe_failure(msg: email.message.Message, said: str) -> str:
    """Why a DMARC failure report is not readable: parsedmarc's words `said` without the
    subject it repeats, when they describe the input; else what its fields show."""
    said = _FAILURE_PREFIX.sub("", said)
    date = _UNKNOWN_DATE.match(said)
    if date:
        return f"a date in it cannot be read: {date.group(1)[:60]!r}"
    if said and not PYTHON_WORDS.search(said) and not _KEY_ERROR.match(said.strip()):
        return said
    return failure_problem(msg) or "its fields do not have the form of a DMARC failure report (RFC 6591)"


_TEXT_FIELD = re.compile(r"^[ \t]*([A-Za-z][A-Za-z -]{0,40}?):[ \t]*(.*)$", re.M)
_TEXT_SAMPLE = "this is a copy of the headers"
_SAMPLE_ONE_OF = ("from", "subject", "date", "message-id")


def failure_problem(msg: email.message.Message) -> str | None:
    """The first thing wrong with a failure report's fields, or None when none is found."""
    from ingest.parsers.arf import parse_fields

    fields: dict[str, list[str]] = {}
    sample = ""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/feedback-report" and not fields:
            fields = parse_fields(part_text(part))
        elif ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers") and not sample:
            sample = part_text(part)
        elif ctype == "text/plain" and not part.is_multipart() and not fields:
            text = part_text(part)
            at = text.lower().find(_TEXT_SAMPLE)
            if at >= 0:  # Exim's plain-text report: "  Sender IP Address: ..." lines, then the headers
                for m in _TEXT_FIELD.finditer(text[:at]):
                    fields.setdefault(m.group(1).strip().lower(), []).append(m.group(2).strip())
                sample = sample or text[text.find("\n", at) + 1:]
    if not fields:
        return "it holds no feedback report fields"
    for name in _ONE_OF:
        if len(fields.get(name, ())) > 1:
            return f"its report has {len(fields[name])} {name.title()} fields, where one is expected"
    ip = (fields.get("source-ip") or fields.get("sender ip address") or [""])[0].split()
    if not ip:
        return "its report has no Source-IP"
    try:
        ipaddress.ip_address(ip[0].strip("[]"))
    except ValueError:
        return f"its Source-IP is not an IP address: {ip[0][:60]!r}"
    for name in ("arrival-date", "received-date", "received date"):
        for value in fields.get(name, ()):
            if not _is_date(value):
                return f"its {name.title()} is not a date: {value[:60]!r}"
    if "arrival-date" not in fields and not _is_date(header_text(msg, "Date") or ""):
        return f"it has no Arrival-Date, and its Date header is not a date: {(header_text(msg, 'Date') or '')[:60]!r}"
    head = parse_fields(sample.split("\n\n", 1)[0]) if sample else {}
    for name in _SAMPLE_ONE_OF:
        if len(head.get(name, ())) > 1:
            return f"its sample message has {len(head[name])} {name.title()} fields, where one is expected"
    return None


def _is_date(text: str) -> bool:
    from email.utils import parsedate_to_datetime

    try:
        parsedate_to_datetime(text)
        return True
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    try:
        from dateutil import parser  # what parsedmarc reads dates with

        parser.parse(text)
        return True
    except (ValueError, OverflowError, TypeError):
        return False
