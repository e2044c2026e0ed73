"""Deciding what kind of feedback a message is, from its structure and headers.

The order matters: a DSN carries `Auto-Submitted: auto-replied` too, so bounces are
recognised before vacation replies; ARF and DMARC reports are recognised by their MIME
structure, and complaints by their strict shapes, before any bounce heuristic looks at the text.
"""
from __future__ import annotations

import email.message

from ingest.bounce import looks_like_bounce
from ingest.parsers.arf import feedback_type_of, looks_like_complaint
from ingest.parsers.autoreply import is_auto_reply
from ingest.parsers.reports import looks_like_report_mail


def detect_kind(msg: email.message.Message) -> str:
    ctype = msg.get_content_type()
    report_type = (msg.get_param("report-type") or "") if ctype == "multipart/report" else ""
    report_type = str(report_type).lower()
    types = {part.get_content_type() for part in msg.walk()} if msg.is_multipart() else set()
    if report_type == "feedback-report" or "message/feedback-report" in types:
        ftype = feedback_type_of(msg)  # None when the feedback part is inside a returned message
        if ftype is not None or report_type == "feedback-report":
            return "dmarc_failure" if ftype == "auth-failure" else "complaint"
    if report_type in ("delivery-status", "delivery-status-notification") or not types.isdisjoint(
            ("message/delivery-status", "message/global-delivery-status")):
        return "bounce"
    report = looks_like_report_mail(msg)
    if report:
        return report
    if looks_like_complaint(msg):  # strict shapes only (legacy FBL, SES JSON, Apple unsubscribe)
        return "complaint"
    if looks_like_bounce(msg):
        return "bounce"
    if is_auto_reply(msg):
        return "auto_reply"
    return "unknown"

