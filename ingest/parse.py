"""One raw message (or report file) in, one `ParseResult` out. No store, no side effects.

This is what `postwatch parse --json` runs and what the pipeline stores. Whatever the input,
it answers: a parser that fails turns into a quarantine reason, never an exception.
"""
from __future__ import annotations

import logging

from ingest.attribution import attribution_from, returned_message
from ingest.bounce import parse_bounce
from ingest.config import IngestConfig
from ingest.detect import detect_kind
from ingest.message import UnreadableMessage, load_message, looks_like_message
from ingest.parsers.arf import parse_arf
from ingest.parsers.reports import parse_report_bytes, parse_report_mail
from ingest.types import ParseResult

log = logging.getLogger(__name__)


def parse_bytes(raw: bytes, config: IngestConfig | None = None, envelope: dict | None = None) -> ParseResult:
    """Parse one input. `envelope` (mail_from, rcpt_tos) helps attribute VERP bounces."""
    config = config or IngestConfig()
    try:
        return _parse(raw, config, envelope)
    except RecursionError:
        return ParseResult(error="message structure too deeply nested to read")
    except MemoryError:
        return ParseResult(error="message needs more memory than allowed to read")
    except Exception as exc:  # a bug in a parser must not lose the message: quarantine it
        log.exception("parser failed")
        return ParseResult(error=f"internal parser error ({type(exc).__name__}: {exc}); "
                                 "the message is kept in quarantine")


def _parse(raw: bytes, config: IngestConfig, envelope: dict | None) -> ParseResult:
    if not raw.strip():
        return ParseResult(error="empty input")
    if len(raw) > config.max_message_bytes:
        return ParseResult(error=f"input is {len(raw) / 1048576:.1f} MB, above the "
                                 f"{config.max_message_bytes / 1048576:.0f} MB limit "
                                 "(ingest.max_message_bytes)")
    if not looks_like_message(raw):
        return parse_report_bytes(raw, config)  # a bare report file: xml, json, gzip, zip
    try:
        msg = load_message(raw)
    except UnreadableMessage as exc:
        return ParseResult(error=str(exc))
    kind = detect_kind(msg)
    if kind == "bounce":
        result = parse_bounce(msg, config, envelope)
    elif kind in ("complaint",):
        result = parse_arf(msg, config)
    elif kind in ("dmarc_aggregate", "dmarc_failure", "smtp_tls"):
        result = parse_report_mail(raw, msg, kind, config)
    elif kind == "auto_reply":
        result = ParseResult(kind="auto_reply")
    else:
        result = ParseResult(kind="unknown", error="not a feedback message: no delivery status, "
                                                   "ARF, DMARC or TLS report found")
    if not result.attribution and result.kind in ("bounce", "complaint", "dmarc_failure"):
        result.attribution = attribution_from(returned_message(msg))
    return result
