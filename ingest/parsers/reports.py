"""DMARC aggregate and failure reports and SMTP TLS reports, read by parsedmarc."""
from __future__ import annotations

import email.message

from ingest.config import IngestConfig
from ingest.types import ParseResult


def looks_like_report_mail(msg: email.message.Message) -> str | None:
    for part in msg.walk():
        ctype = part.get_content_type()
        name = (part.get_filename() or "").lower()
        if "tlsrpt" in ctype or name.endswith(".json") or name.endswith(".json.gz"):
            return "smtp_tls"
        if ctype in ("application/zip", "application/gzip", "application/x-gzip", "text/xml",
                     "application/xml", "application/x-zip-compressed") or name.endswith((".xml", ".zip", ".gz")):
            return "dmarc_aggregate"
    return None


def _parse(raw: bytes, config: IngestConfig) -> ParseResult:
    import parsedmarc  # heavy: imported only when a report is met

    try:
        parsed = parsedmarc.parse_report_file(raw, offline=config.offline)
    except parsedmarc.ParserError as exc:
        return ParseResult(error=f"not a valid report: {exc}")
    rtype = parsed["report_type"]
    rep = parsed["report"]
    if rtype == "aggregate":
        meta = rep["report_metadata"]
        return ParseResult(kind="dmarc_aggregate", detail=rep, report={
            "report_id": meta["report_id"], "org_name": meta["org_name"],
            "domain": rep["policy_published"]["domain"], "begin": meta["begin_date"],
            "end": meta["end_date"], "records": len(rep["records"]),
            "messages": sum(r["count"] for r in rep["records"])})
    if rtype == "smtp_tls":
        pols = rep["policies"]
        return ParseResult(kind="smtp_tls", detail=rep, report={
            "organization_name": rep["organization_name"], "report_id": rep["report_id"],
            "begin": rep["begin_date"], "end": rep["end_date"], "policies": len(pols),
            "successful_sessions": sum(p["successful_session_count"] for p in pols),
            "failed_sessions": sum(p["failed_session_count"] for p in pols)})
    return ParseResult(kind="dmarc_failure", detail=rep, report={
        "feedback_type": rep.get("feedback_type"), "source_ip": (rep.get("source") or {}).get("ip_address"),
        "reported_domain": rep.get("reported_domain"), "arrival_date": rep.get("arrival_date_utc")})


def parse_report_bytes(raw: bytes, config: IngestConfig) -> ParseResult:
    return _parse(raw, config)


def parse_report_mail(raw: bytes, msg: email.message.Message, kind: str, config: IngestConfig) -> ParseResult:
    return _parse(raw, config)
