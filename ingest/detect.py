"""Deciding what kind of feedback a message is, from its structure and headers.

The order matters: a DSN carries `Auto-Submitted: auto-replied` too, so bounces are
recognised before vacation replies; ARF and DMARC reports are recognised by their MIME
structure, and complaints by their strict shapes, before any bounce heuristic looks at the text.

What a detector reads to decide (a complaint's feedback fields, the parts of a report mail
that hold a report) is handed on in the `Detection`, and the parser goes on from there
instead of reading it again.
"""
from __future__ import annotations

import email.message
from dataclasses import dataclass

from ingest.bounce import looks_like_bounce
from ingest.parsers.arf import Feedback, looks_like_complaint, read_feedback
from ingest.parsers.autoreply import is_auto_reply
from ingest.parsers.reports import find_report_mail


@dataclass(frozen=True)
class Detection:
    """The kind of a message, and what was read of it to decide."""

    kind: str
    feedback: Feedback | None = None  # a complaint (or an RFC 6591 failure report): its report and fields
    report_parts: list[email.message.Message] | None = None  # a report mail's parts that hold a report


def detect(msg: email.message.Message) -> Detection:
    ctype = msg.get_content_type()
    report_type = (msg.get_param("report-type") or "") if ctype == "multipart/report" else ""
    report_type = str(report_type).lower()
    types = {part.get_content_type() for part in msg.walk()} if msg.is_multipart() else set()
    if report_type == "feedback-report" or "message/feedback-report" in types:
        feedback = read_feedback(msg)
        ftype = feedback.feedback_type  # None when the feedback part is inside a returned message
        if ftype is not None or report_type == "feedback-report":
            return Detection("dmarc_failure" if ftype == "auth-failure" else "complaint", feedback=feedback)
    if report_type in ("delivery-status", "delivery-status-notification") or not types.isdisjoint(
            ("message/delivery-status", "message/global-delivery-status")):
        return Detection("bounce")
    report = find_report_mail(msg)
    if report:
        return Detection(report.kind, report_parts=report.parts)
    complaint = looks_like_complaint(msg)  # strict shapes only (legacy FBL, SES JSON, Apple unsubscribe)
    if complaint is not None:
        return Detection("complaint", feedback=complaint)
    if looks_like_bounce(msg):
        return Detection("bounce")
    if is_auto_reply(msg):
        return Detection("auto_reply")
    return Detection("unknown")

