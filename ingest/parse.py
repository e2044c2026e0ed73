"""One raw message (or report file) in, one `ParseResult` out. No store, no side effects.

This is what `postwatch parse --json` runs and what the pipeline stores. Whatever the input,
it answers: a parser that fails turns into a quarantine reason, never an exception, and so
does a parse that runs past its CPU budget (`ingest.parse_timeout`, ingest/budget.py).
"""
from __future__ import annotations

import logging
from typing import cast

from ingest import budget, verp
from ingest.attribution import attribution_from, received_ips, returned_message
from ingest.bounce import parse_bounce
from ingest.config import IngestConfig
from ingest.detect import detect
from ingest.envelope import Envelope
from ingest.headers import addresses
from ingest.message import UnreadableMessage, load_message, looks_like_message
from ingest.parsers.arf import parse_arf
from ingest.parsers.reports import ReportsElsewhere, parse_report_bytes, parse_report_mail
from ingest.types import BounceEvent, ComplaintEvent, ParseResult

log = logging.getLogger(__name__)


def prepare(config: IngestConfig) -> None:
    """Load and check what parsing needs, once, before the first input.

    A broken rules file stops the command here with its reason (instead of quarantining
    every bounce), and worker processes forked afterwards share the compiled rules.
    Raises `ingest.bounce.rules.RulesError`.
    """
    from ingest.bounce.rules import load_rules

    load_rules(config.rules_file)


def parse_bytes(raw: bytes, config: IngestConfig | None = None, envelope: Envelope | None = None,
                detail: bool = True) -> ParseResult:
    """Parse one input. The `envelope`'s recipients help attribute VERP bounces.

    `detail` False: the caller keeps no `ParseResult.detail` (postwatch parse prints the
    summary only), and a DMARC failure report may be read without importing parsedmarc.
    """
    config = config or IngestConfig()
    try:
        return budget.within(config.parse_timeout, _parse_or_say_why, raw, config, envelope, detail)
    except budget.OverBudget:
        return ParseResult(error=f"parse took longer than {config.parse_timeout:g} s of CPU "
                                 "(ingest.parse_timeout); the message is kept in quarantine")


def _parse_or_say_why(raw: bytes, config: IngestConfig, envelope: Envelope | None, detail: bool) -> ParseResult:
    try:
        return _parse(raw, config, envelope, detail)
    except ReportsElsewhere:
        raise  # this process was told to leave the input to another (postwatch parse's parent)
    except RecursionError:
        return ParseResult(error="message structure too deeply nested to read")
    except MemoryError:
        return ParseResult(error="message needs more memory than allowed to read")
    except Exception as exc:  # a bug in a parser must not lose the message: quarantine it
        log.exception("parser failed")
        return ParseResult(error=f"internal parser error ({type(exc).__name__}: {exc}); "
                                 "the message is kept in quarantine")


def _parse(raw: bytes, config: IngestConfig, envelope: Envelope | None, detail: bool) -> ParseResult:
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
    found = detect(msg)
    kind = found.kind
    if kind == "bounce":
        result = parse_bounce(msg, config)
    elif kind == "complaint":
        result = parse_arf(msg, config, found.feedback)
    elif kind in ("dmarc_aggregate", "dmarc_failure", "smtp_tls"):
        result = parse_report_mail(raw, msg, kind, config, detail, found.report_parts)
    elif kind == "auto_reply":
        result = ParseResult(kind="auto_reply")
    else:
        result = ParseResult(kind="unknown", error="not a feedback message: no delivery status, "
                                                   "ARF, DMARC or TLS report found")
    if result.kind in ("bounce", "complaint", "dmarc_failure"):
        original = returned_message(msg)
        if not result.attribution:
            result.attribution = attribution_from(original)
        if "received_ips" not in result.attribution:
            ips = received_ips(original)
            if ips:
                result.attribution["received_ips"] = ips
        _apply_verp(result, msg, original, envelope, config)
    return result


# Where the return path shows up again: the envelope, then the headers the receiving MTA adds.
VERP_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


def _apply_verp(result: ParseResult, msg, original, envelope: Envelope | None, config: IngestConfig) -> None:
    candidates: list[str] = list(envelope.rcpt_tos or ()) if envelope is not None else []
    for name in VERP_HEADERS:
        candidates.extend(str(v) for v in msg.get_all(name) or [])
    if result.kind == "complaint":  # a complaint report names the return path; a bounce event does not
        for ev in cast("list[ComplaintEvent]", result.events):
            if ev.get("original_mail_from"):
                candidates.append(str(ev["original_mail_from"]))
    if original is not None and original.get("Return-Path"):
        candidates.append(str(original.get("Return-Path")))
    candidates = [c for c in candidates if "+" in c]  # cheap: a return path of ours has a "+"
    if not candidates:
        return
    found = None
    for _, address in (pair for c in candidates for pair in addresses(c)):
        found = verp.decode(address, config.verp_secret or None) if "@" in address else None
        if found is not None:
            break
    if found is None:
        return
    if found.kind == "classic":
        result.attribution["verp_recipient"] = found.recipient
    else:
        result.attribution["verp_token"] = found.token
        if found.valid:
            result.attribution["send_id"] = found.send_id
    if result.kind == "bounce" and not result.events and found.recipient:
        from ingest.bounce.classify import classify

        event: BounceEvent = {"recipient": found.recipient, "action": "failed", "status": None,
                              "reply_code": None, "diagnostic": None}
        event.update(cast(BounceEvent, classify(cast(dict, event), config=config)))
        result.events = [event]
        result.error = None
