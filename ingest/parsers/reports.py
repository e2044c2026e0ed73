"""DMARC aggregate and failure reports and SMTP TLS reports, read by parsedmarc.

Report attachments are found and unpacked here (bounded, see `safety`), then each one is
handed to parsedmarc's own XML / JSON readers, so a message with several reports yields all
of them; an aggregate report of the common plain shape is read by `aggregate`, which gives
the same result several times faster. parsedmarc is imported only when a report is met (it
costs ~0.45 s), and always with `offline` from the configuration: no DNS or downloads at
parse time.
"""
from __future__ import annotations

import email.message
import hashlib
import logging
import re
from datetime import datetime, timezone
from typing import Any, NamedTuple

from ingest.config import IngestConfig
from ingest.headers import for_readers
from ingest.message import normalise_newlines, part_text
from ingest.parsers.aggregate import NotPlain, mirrors, read_aggregate
from ingest.parsers.failure import read_failure
from ingest.parsers.report_shape import describe, describe_failure, tls_problem
from ingest.parsers.safety import UnsafeReport, check_xml, is_compressed, unpack
from ingest.types import ParseResult

AGGREGATE_TYPES = ("application/zip", "application/x-zip", "application/x-zip-compressed",
                   "application/gzip", "application/x-gzip", "application/x-gunzip",
                   "application/gzip-compressed", "application/xml", "text/xml")
TLS_TYPES = ("application/tlsrpt+json", "application/tlsrpt+gzip")
GENERIC_TYPES = ("application/octet-stream", "application/x-compressed", "application/x-compress",
                 "text/plain", "application/json")
REPORT_NAME = re.compile(r"\.(xml|zip|gz|json)(\.gz|\.zip)?$", re.I)
# "A message claiming to be from you has failed the published DMARC policy" (Exim, plain text)
TEXT_FAILURE = "a message claiming to be from you has failed"
_BODY_HEAD = 600
log = logging.getLogger(__name__)


class ReportsElsewhere(Exception):
    """A report input met in a process told to leave reports to another (see `reports_elsewhere`)."""


class _Parsedmarc:
    """parsedmarc and one ParserConfig, made on first use; and whether `aggregate` reads like it."""

    module: Any = None
    configs: dict[bool, Any] = {}
    fast = False
    sources: dict[str, Any] = {}  # offline IP address enrichment, for `read_aggregate`
    elsewhere = False  # raise ReportsElsewhere instead of importing parsedmarc

    @classmethod
    def get(cls, offline: bool) -> tuple[Any, Any]:
        if cls.module is None:
            if cls.elsewhere:
                raise ReportsElsewhere("parsedmarc is not loaded in this process")
            import logging

            import parsedmarc  # heavy: imported only when a report is met

            logging.getLogger("parsedmarc").setLevel(logging.CRITICAL)
            cls.module = parsedmarc
            cls.fast = mirrors(parsedmarc)
        if offline not in cls.configs:
            from parsedmarc.config import ParserConfig

            cls.configs[offline] = ParserConfig(offline=offline, always_use_local_files=offline)
        return cls.module, cls.configs[offline]


def reports_elsewhere(flag: bool) -> None:
    """Whether this process leaves the inputs that need parsedmarc to another process: when
    set and parsedmarc is not loaded yet, reading such an input raises ReportsElsewhere.

    Importing parsedmarc costs ~0.5 s of CPU; worker processes that each met one report
    would each pay it, so `postwatch parse` hands those inputs back to its parent.
    """
    _Parsedmarc.elsewhere = flag


# --- recognising a report mail -------------------------------------------------------

def _report_parts(msg: email.message.Message):
    """Leaf parts of `msg` that may hold a report, not looking inside returned messages."""
    stack = [msg]
    while stack:
        part = stack.pop(0)
        if part.is_multipart():
            stack[:0] = [p for p in part.get_payload() if isinstance(p, email.message.Message)]
            continue
        if part.get_content_maintype() == "message":
            continue  # a forwarded or returned message: its attachments are not ours
        yield part


def _candidate(part: email.message.Message) -> str | None:
    ctype = part.get_content_type()
    name = (part.get_filename() or part.get_param("name") or "")
    name = str(name).lower() if not isinstance(name, tuple) else ""
    if ctype in TLS_TYPES or name.endswith((".json", ".json.gz")):
        return "smtp_tls"
    if ctype in AGGREGATE_TYPES:
        return "dmarc_aggregate"
    if REPORT_NAME.search(name) and ctype in GENERIC_TYPES:
        return "dmarc_aggregate"
    return None


class ReportMail(NamedTuple):
    """What detection found in a report mail, for `parse_report_mail` to go on from."""

    kind: str  # dmarc_aggregate | smtp_tls | dmarc_failure
    parts: list[email.message.Message] | None  # the parts that hold a report, in order; None: not looked for


def find_report_mail(msg: email.message.Message) -> ReportMail | None:
    """The kind of report the message carries (`dmarc_aggregate`, `smtp_tls` or
    `dmarc_failure`) and the parts that hold one; None when it carries none."""
    if msg.get("TLS-Report-Domain") is not None or msg.get("TLS-Report-Submitter") is not None:
        return ReportMail("smtp_tls", None)
    kind: str | None = None
    holding = []
    for part in _report_parts(msg):
        candidate = _candidate(part)
        inline = None if candidate else _inline_report(part)
        if candidate or inline:
            holding.append(part)
        if kind is None:  # the first part that says, in this order
            if candidate:
                kind = candidate
            elif part.get_content_type() == "text/plain" and TEXT_FAILURE in _head_text(part):
                kind = "dmarc_failure"
            else:
                kind = inline
    return None if kind is None else ReportMail(kind, holding)


def _head_text(part: email.message.Message) -> str:
    payload = part.get_payload()
    if not isinstance(payload, str):
        return ""
    if (part.get("Content-Transfer-Encoding") or "").strip().lower() in ("base64", "quoted-printable"):
        return part_text(part)[:_BODY_HEAD].lower()
    return payload.lstrip()[:_BODY_HEAD].lower()


# --- summaries and keys --------------------------------------------------------------

def _iso(value: Any) -> str | None:
    """parsedmarc's "YYYY-MM-DD HH:MM:SS" (UTC) or an RFC 3339 string, as ISO 8601 UTC."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            dt = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if dt.tzinfo is not None:
            dt = dt.astimezone(timezone.utc)
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return text


def aggregate_summary(rep: dict[str, Any]) -> dict[str, Any]:
    meta = rep["report_metadata"]
    return {"report_id": str(meta["report_id"]), "org_name": meta["org_name"],
            "domain": rep["policy_published"]["domain"], "begin": _iso(meta["begin_date"]),
            "end": _iso(meta["end_date"]), "records": len(rep["records"]),
            "messages": sum(int(r.get("count") or 0) for r in rep["records"])}


def tls_summary(rep: dict[str, Any]) -> dict[str, Any]:
    pols = rep.get("policies") or []
    return {"organization_name": rep["organization_name"], "report_id": str(rep["report_id"]),
            "begin": _iso(rep.get("begin_date")), "end": _iso(rep.get("end_date")),
            "policies": len(pols),
            "successful_sessions": sum(int(p.get("successful_session_count") or 0) for p in pols),
            "failed_sessions": sum(int(p.get("failed_session_count") or 0) for p in pols)}


def failure_summary(rep: dict[str, Any]) -> dict[str, Any]:
    sample = rep.get("parsed_sample") or {}
    sender = sample.get("from") or {}
    auth_failure = rep.get("auth_failure")
    if isinstance(auth_failure, list):
        auth_failure = ", ".join(str(a) for a in auth_failure) or None
    return {"feedback_type": (rep.get("feedback_type") or "auth-failure").strip().lower(),
            "source_ip": (rep.get("source") or {}).get("ip_address"),
            "reported_domain": rep.get("reported_domain"),
            "arrival_date": _iso(rep.get("arrival_date_utc")),
            "auth_failure": auth_failure, "delivery_result": rep.get("delivery_result"),
            "original_mail_from": _bare(rep.get("original_mail_from")),
            "original_rcpt_to": _bare(rep.get("original_rcpt_to")),
            "original_from": sender.get("address") if isinstance(sender, dict) else None,
            "original_subject": sample.get("subject")}


def _bare(addr: Any) -> str | None:
    text = str(addr or "").strip().strip("<>").strip()
    return text.lower() or None


def report_key(kind: str, detail: dict[str, Any]) -> str:
    """A stable key for one report, so a re-sent report is stored once.

    Aggregate: org_name + report_id + domain + begin + end (parsedmarc's identity of a
    report); TLS: organization_name + report_id; failure: what identifies the failed message.
    Accepts parsedmarc's report shape or the summary shape.
    """
    if kind == "dmarc_aggregate":
        if "report_metadata" in detail:
            s = aggregate_summary({**detail, "records": []})
        else:
            s = detail
        parts = [s.get("org_name"), s.get("report_id"), s.get("domain"), s.get("begin"), s.get("end")]
    elif kind == "smtp_tls":
        parts = [detail.get("organization_name"), detail.get("report_id")]
    elif kind == "dmarc_failure":
        s = failure_summary(detail) if "source" in detail or "arrival_date_utc" in detail else detail
        sample = detail.get("parsed_sample") or {}
        parts = [s.get("reported_domain"), s.get("source_ip"), s.get("arrival_date"),
                 s.get("original_mail_from"), detail.get("original_envelope_id"),
                 detail.get("message_id") or sample.get("message-id")]
    else:
        raise ValueError(f"no report key for kind {kind!r}")
    text = "\x1f".join("" if p is None else str(p).strip().lower() for p in parts)
    return f"{kind}:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# --- parsing -------------------------------------------------------------------------

def _parse_text(data: bytes, config: IngestConfig) -> tuple[str, dict[str, Any]]:
    """(kind, parsedmarc report) from unpacked XML or JSON bytes; raises on anything else."""
    text = data.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if text.startswith("<"):
        check_xml(text)
        pm, cfg = _Parsedmarc.get(config.offline)
        if _Parsedmarc.fast:
            try:
                return "dmarc_aggregate", read_aggregate(text, pm, cfg, _Parsedmarc.sources)
            except NotPlain:
                pass  # parsedmarc reads it, or says why it cannot
        span = _date_range_days(text)
        if span is not None and span > MAX_RANGE_DAYS:  # parsedmarc walks the range a day at a time
            raise UnsafeReport(f"not a valid DMARC aggregate report: its <date_range> spans {span:,} days "
                               f"(a report covers at most {MAX_RANGE_DAYS})")
        try:
            return "dmarc_aggregate", pm.parse_aggregate_report_xml(text, config=cfg)
        except pm.ParserError as exc:
            why = describe("dmarc_aggregate", text, _short(exc))
            raise UnsafeReport(f"not a valid DMARC aggregate report: {why}") from exc
    if text.startswith("{"):
        # parsedmarc passes on fields of any kind (counts that are not numbers, a policy that is
        # not an object); the summary needs them right, so the structure is checked first
        problem = tls_problem(text)
        if problem:
            raise UnsafeReport(f"not a valid SMTP TLS report: {problem}")
        pm, cfg = _Parsedmarc.get(config.offline)
        try:
            return "smtp_tls", pm.parse_smtp_tls_report_json(text)
        except pm.ParserError as exc:
            raise UnsafeReport(f"not a valid SMTP TLS report: {describe('smtp_tls', text, _short(exc))}") from exc
    raise UnsafeReport("not a DMARC aggregate (XML) or SMTP TLS (JSON) report")


MAX_RANGE_DAYS = 366  # RFC 7489 reports cover a day, some a week; none a year
_RANGE = re.compile(r"<begin>\s*(\d{1,20})\s*</begin>\s*<end>\s*(\d{1,20})\s*</end>")


def _date_range_days(text: str) -> int | None:
    """The days between a report's <begin> and <end>, when it gives both as numbers."""
    m = _RANGE.search(text, 0, 100_000)
    if m is None:
        return None
    return (int(m.group(2)) - int(m.group(1))) // 86400


def _short(exc: Exception, most: int = 200) -> str:
    text = " ".join(str(exc).split())
    text = re.sub(r" \(raised at [^)]*\)", "", text)
    return text[:most]


def _result(found: list[tuple[str, dict[str, Any]]]) -> ParseResult:
    """The first report in `report`/`detail`; with several, each one in `reports` as its
    summary plus `kind` and `detail` (parsedmarc's full report, for the store)."""
    summaries = []
    for kind, rep in found:
        if kind == "dmarc_aggregate":
            summaries.append(aggregate_summary(rep))
        elif kind == "smtp_tls":
            summaries.append(tls_summary(rep))
        else:
            summaries.append(failure_summary(rep))
    kind, first = found[0]
    several = [{**s, "kind": k, "detail": rep} for s, (k, rep) in zip(summaries, found)] \
        if len(found) > 1 else []
    return ParseResult(kind=kind, report=summaries[0], detail=first, reports=several)


def parse_report_bytes(raw: bytes, config: IngestConfig) -> ParseResult:
    """A bare report file: XML, JSON, or either one gzipped or zipped."""
    try:
        data = unpack(raw, config.max_decompressed_bytes)
        if is_compressed(data):
            raise UnsafeReport("archive holds another archive; a report is XML or JSON")
        return _result([_parse_text(data, config)])
    except UnsafeReport as exc:
        return ParseResult(error=str(exc))


def parse_report_mail(raw: bytes, msg: email.message.Message, kind: str,
                      config: IngestConfig, detail: bool = True, parts: list[email.message.Message] | None = None
                      ) -> ParseResult:
    """Every report a mail carries (attached, inline or as its whole body); with `detail`
    False, the caller keeps only the summary (see `parse_failure_mail`). `parts`: those
    that hold a report, when detection found them (`find_report_mail`)."""
    found: list[tuple[str, dict[str, Any]]] = []
    errors: list[str] = []
    if parts is None:
        parts = [p for p in _report_parts(msg) if _candidate(p) or _inline_report(p)]
    for part in parts:
        data = part.get_payload(decode=True)
        if not data:
            name = part.get_filename() or part.get_content_type()
            errors.append(f"report attachment {name} is empty or its encoding cannot be decoded")
            continue
        try:
            unpacked = unpack(data, config.max_decompressed_bytes)
            found.append(_parse_text(unpacked, config))
        except UnsafeReport as exc:
            name = part.get_filename()
            errors.append(f"{name}: {exc}" if name else str(exc))
    if not found and kind == "dmarc_failure":
        return parse_failure_mail(raw, msg, config, detail)
    if found:  # the readable reports are kept even when another attachment was not
        return _result(found)
    reason = errors[0] if errors else "no DMARC or TLS report found in the message"
    return ParseResult(kind="unknown" if not errors else kind, error=reason)


def _inline_report(part: email.message.Message) -> str | None:
    """The kind of report a text part's body is, when it is an XML or TLS JSON report."""
    if part.get_content_maintype() != "text" and part.get_content_type() != "application/json":
        return None
    head = _head_text(part).lstrip("\ufeff \t\r\n")
    if head.startswith(("<?xml", "<feedback")) and "<feedback" in head:
        return "dmarc_aggregate"
    if head.startswith("{") and '"organization-name"' in head:
        return "smtp_tls"
    return None


def parse_failure_mail(raw: bytes, msg: email.message.Message, config: IngestConfig,
                       detail: bool = True) -> ParseResult:
    """A DMARC failure report (RFC 6591 ARF `auth-failure`, or a plain-text one) via parsedmarc.

    Without `detail` (parsedmarc's full report, which the store keeps) the summary may come
    from `failure.read_failure`, which follows parsedmarc's rules without its import.
    """
    if _Parsedmarc.elsewhere and _Parsedmarc.module is None:
        raise ReportsElsewhere("failure reports are read by another process")
    raw = for_readers(raw, msg)  # both readers parse it again with the email package
    if not detail:
        found = read_failure(normalise_newlines(raw))
        if found is not None:
            return ParseResult(kind="dmarc_failure", report=failure_summary(found))
    pm, cfg = _Parsedmarc.get(config.offline)
    try:
        parsed = pm.parse_report_email(normalise_newlines(raw), config=cfg)
    except pm.ParserError as exc:
        return _failure_from_arf(msg, describe_failure(msg, _short(exc, 400)))
    except (RecursionError, MemoryError):
        raise
    except Exception:  # parsedmarc promises ParserError only; be sure anyway, and say why in words
        log.debug("parsedmarc failed on a failure report", exc_info=True)
        return _failure_from_arf(msg, describe_failure(msg, ""))
    if parsed.get("report_type") != "failure":
        kind = {"aggregate": "dmarc_aggregate", "smtp_tls": "smtp_tls"}.get(parsed.get("report_type"))
        if kind:
            return _result([(kind, parsed["report"])])
        return _failure_from_arf(msg, "no failure report found")
    return _result([("dmarc_failure", parsed["report"])])


def _failure_from_arf(msg: email.message.Message, why: str) -> ParseResult:
    """When parsedmarc refuses a failure report, its ARF fields are still worth keeping."""
    from ingest.parsers.arf import failure_report_from_arf

    report = failure_report_from_arf(msg)
    if report is None or not (report.get("source_ip") or report.get("reported_domain")):
        return ParseResult(kind="dmarc_failure", error=f"DMARC failure report not readable: {why}")
    return ParseResult(kind="dmarc_failure", report=report)
