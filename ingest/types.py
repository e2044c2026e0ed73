"""The shapes ingest produces: one typed home for every event and report.

`postwatch parse --json` prints these (DESIGN.md fixes the field names); the pipeline
stores them. Codes are strings ("550", "5.1.1").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

Kind = Literal[
    "bounce", "complaint", "dmarc_aggregate", "dmarc_failure", "smtp_tls", "auto_reply", "unknown",
]
KINDS: tuple[str, ...] = (
    "bounce", "complaint", "dmarc_aggregate", "dmarc_failure", "smtp_tls", "auto_reply", "unknown",
)


class Attribution(TypedDict, total=False):
    """What a returned message says about where it came from."""

    message_id: str | None
    from_address: str | None
    from_domain: str | None  # the sending domain
    subject: str | None
    list_id: str | None
    feedback_id: str | None
    campaign: str | None  # X-Campaign / X-Campaign-ID / X-Mailer-Campaign style headers
    verp_recipient: str | None  # from classic VERP: bounces+LOCAL=DOMAIN@
    verp_token: str | None  # from the signed return path: bounces+t-TOKEN@
    send_id: int | None  # decoded from a valid token
    received_ips: list[str]  # client IPs of the returned message's Received headers, newest first


class BounceEvent(TypedDict, total=False):
    """One recipient of one DSN (or one SMTP-time rejection)."""

    recipient: str | None
    original_recipient: str | None
    final_recipient: str | None  # where an alias expanded to, when `recipient` is what the sender used
    action: str | None  # failed | delayed | delivered | relayed | expanded
    status: str | None  # RFC 3463, "5.1.1"
    reply_code: str | None  # "550"
    diagnostic: str | None
    diagnostic_type: str | None  # smtp | x-unix | ...
    remote_mta: str | None
    reporting_mta: str | None
    smtp_command: str | None  # RCPT, DATA, MAIL, CONN, EHLO, ...
    arrival_date: str | None  # ISO 8601
    last_attempt_date: str | None
    reason: str
    hard_bounce: bool
    category: str
    rule: str | None  # which classification rule decided (see `postwatch explain`)
    provider: str | None  # the mailbox provider the rule was scoped to, if any
    conflict: str | None  # the words and the codes disagreed, and how that was settled (soft)
    mta_category: str | None  # the sending MTA's own classification (X-PowerMTA-BounceCategory)


class ComplaintEvent(TypedDict, total=False):
    """One ARF report (RFC 5965, and the JMRP / CFL shapes)."""

    recipient: str | None
    feedback_type: str  # abuse | fraud | virus | other | not-spam | opt-out | auth-failure ...
    source_ip: str | None
    reported_domain: str | None
    user_agent: str | None
    version: str | None
    original_mail_from: str | None
    original_rcpt_to: str | None
    arrival_date: str | None  # ISO 8601
    authentication_results: str | None
    reporting_mta: str | None


class AggregateSummary(TypedDict):
    report_id: str
    org_name: str
    domain: str
    begin: str
    end: str
    records: int
    messages: int


class FailureSummary(TypedDict, total=False):
    feedback_type: str
    source_ip: str | None
    reported_domain: str | None
    arrival_date: str | None
    auth_failure: str | None
    delivery_result: str | None


class TLSSummary(TypedDict):
    organization_name: str
    report_id: str
    begin: str
    end: str
    policies: int
    successful_sessions: int
    failed_sessions: int


@dataclass
class ParseResult:
    """What one raw message turned out to be.

    `report` is the summary the JSON contract shows; `detail` is the full parsed report
    (parsedmarc's shape) that the store keeps, and is not printed.
    """

    kind: str = "unknown"
    events: list[BounceEvent | ComplaintEvent] = field(default_factory=list)  # a bounce's or a complaint's
    report: dict[str, Any] | None = None
    error: str | None = None
    attribution: Attribution = field(default_factory=dict)  # type: ignore[assignment]
    detail: Any = None
    reports: list[dict[str, Any]] = field(default_factory=list)  # more than one report in one message

    @property
    def quarantined(self) -> bool:
        return self.error is not None

    def as_json(self, file: str | None = None) -> dict[str, Any]:
        """The `postwatch parse --json` contract (DESIGN.md)."""
        out: dict[str, Any] = {"file": file, "kind": self.kind, "events": self.events,
                               "report": self.report, "error": self.error}
        if self.attribution:
            out["attribution"] = self.attribution
        return out
