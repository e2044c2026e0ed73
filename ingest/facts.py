"""Turning parsed results into rows: events and DMARC records in bulk, other reports one by one."""
from __future__ import annotations

import collections
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, tuple_, update
from sqlalchemy.orm import Session

from ingest.attribution import OwnIps, sending_ip
from ingest.outcome import Outcome, Parsed
from ingest.types import BounceEvent, ComplaintEvent, ParseResult
from ingest.webhooks.facts import KIND as WEBHOOK, WebhookFacts
from ingest.webhooks.readers import SOURCE_PREFIX as WEBHOOK_SOURCE
from store import models as m
from store.addresses import domain_of
from store.bulk import insert_rows
from store.clock import utcnow
from store.columns import cut
from store.timeparse import parse_when
from store.volume import SendLog
from store.volume_counts import add_counts


class FactWriter:
    """Writes the facts of freshly stored messages inside the caller's transaction."""

    def __init__(self, session: Session, own: OwnIps | None = None) -> None:
        self.session = session
        self.own = own or OwnIps()
        self._send_ips: dict[int, str | None] = {}  # send_log id -> its sending IP
        # DMARC aggregate reports to write in bulk at the end of `write`: (report row, records),
        # and the keys they take, so a second copy in the same batch is seen
        self._dmarc: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        self._dmarc_keys: dict[tuple, int | None] = {}
        # webhook send counts of the batch, added once per origin at the end of `write`
        self._volume: dict[str, tuple[collections.Counter, list[int], Any]] = {}

    def write(self, items: list[tuple[Parsed, Outcome]]) -> None:
        quarantine: list[dict[str, Any]] = []
        bounces: list[dict[str, Any]] = []
        complaints: list[dict[str, Any]] = []
        mail_bounces: list[dict[str, Any]] = []  # read from mail: maybe logged by the MTA already
        counted: list[tuple[Outcome, list[dict[str, Any]]]] = []
        self._load_send_ips(items)
        for p, out in items:
            r = p.result
            if out.status == "quarantined":
                quarantine.append({"message_id": out.message_id, "reason": r.error or "unreadable",
                                   "created_at": p.received_at, "released_at": None})
            elif r.kind == "bounce":
                rows = self._bounces(p, out.message_id)
                mail_bounces.extend(rows)
                out.events = len(rows)
                counted.append((out, rows))
            elif r.kind == "complaint":
                rows = self._complaints(p, out.message_id)
                complaints.extend(rows)
                out.events = len(rows)
            elif r.kind == "dmarc_aggregate":
                out.events = self._aggregates(p, out)
            elif r.kind == "smtp_tls":
                out.events = self._tls(p, out)
            elif r.kind == "dmarc_failure":
                out.events = self._failure(p, out.message_id)
            elif r.kind == WEBHOOK:
                out.events = self._webhook(p, out, bounces, complaints)
        if mail_bounces:
            logged = self._logged(mail_bounces)
            if logged:
                for out, rows in counted:
                    out.events -= sum(id(r) in logged for r in rows)
            bounces.extend(r for r in mail_bounces if id(r) not in logged)
        for model, rows in ((m.Quarantine, quarantine), (m.BounceEvent, bounces), (m.ComplaintEvent, complaints)):
            if rows:  # every row of one kind has the same keys
                columns = list(rows[0])
                insert_rows(self.session, cast(Table, model.__table__), columns,
                            [tuple(r[c] for c in columns) for r in rows])
        self._write_aggregates()
        self._write_volume()

    def _logged(self, rows: list[dict[str, Any]]) -> set[int]:
        """The rows (by id()) whose failure an MTA log gave already: a bounce event read from a
        log (`postwatch ingest-log`) for the same message (Message-ID) and recipient. The
        non-delivery report the MTA mailed is a second account of it (the log side skips a
        report read first the same way)."""
        known = [r for r in rows if r["orig_message_id"] and r["recipient"]]
        seen = stored_failures(self.session, [(r["orig_message_id"], r["recipient"]) for r in known],
                               from_logs=True)
        return {id(r) for r in known
                if (r["orig_message_id"].strip().strip("<>"), r["recipient"].lower()) in seen} if seen else set()

    def _attributed(self, r: ParseResult) -> dict[str, Any]:
        a = r.attribution or {}
        return {"orig_message_id": cut(a.get("message_id"), 998), "from_domain": cut(a.get("from_domain"), 255),
                "feedback_id": cut(a.get("feedback_id"), 255), "list_id": cut(a.get("list_id"), 255),
                "campaign": cut(a.get("campaign"), 255), "verp_token": cut(a.get("verp_token"), 64),
                "send_id": a.get("send_id")}

    def _load_send_ips(self, items: list[tuple[Parsed, Outcome]]) -> None:
        """The sending IPs of the sends the batch's VERP tokens point at, in one query."""
        ids = {a.get("send_id") for p, _ in items if (a := p.result.attribution)} - {None}
        ids -= self._send_ips.keys()
        if ids:
            self._send_ips.update((i, ip) for i, ip in self.session.execute(
                select(SendLog.id, SendLog.sending_ip).where(SendLog.id.in_(ids))))

    def _sending_ip(self, r: ParseResult, *, source_ip: str | None = None, diagnostic: str | None = None,
                    reporting_mta: str | None = None) -> tuple[str | None, str | None]:
        """The sending IP of an event (a complaint's source IP, a bounce's diagnostic), and what said so."""
        a = r.attribution or {}
        send_id = a.get("send_id")
        return sending_ip(self.own, send_log_ip=self._send_ips.get(send_id) if send_id is not None else None,
                          source_ip=source_ip, received=a.get("received_ips") or (),
                          diagnostic=diagnostic, reporting_mta=reporting_mta)

    def _bounces(self, p: Parsed, message_id: int | None) -> list[dict[str, Any]]:
        attributed = self._attributed(p.result)
        rows: list[dict[str, Any]] = []
        for ev in cast("list[BounceEvent]", p.result.events):  # a bounce's events are bounce events
            rcpt = ev.get("recipient")
            ip, by = self._sending_ip(p.result, diagnostic=ev.get("diagnostic"), reporting_mta=ev.get("reporting_mta"))
            when = parse_when(ev.get("last_attempt_date")) or parse_when(ev.get("arrival_date")) or p.received_at
            rows.append(dict(
                message_id=message_id, occurred_at=when, recipient=cut(rcpt, 320), recipient_domain=_domain(rcpt),
                provider=cut(ev.get("provider"), 40), action=cut(ev.get("action"), 20),
                status=cut(ev.get("status"), 16), reply_code=cut(ev.get("reply_code"), 3),
                diagnostic=ev.get("diagnostic"), remote_mta=cut(ev.get("remote_mta"), 255),
                reporting_mta=cut(ev.get("reporting_mta"), 255), smtp_command=cut(ev.get("smtp_command"), 16),
                reason=ev.get("reason") or "undefined", hard=bool(ev.get("hard_bounce")),
                category=ev.get("category") or "unknown", rule=ev.get("rule"), conflict=ev.get("conflict"),
                sending_ip=ip, attributed_by=by, **attributed))
        return rows

    def _complaints(self, p: Parsed, message_id: int | None) -> list[dict[str, Any]]:
        attributed = self._attributed(p.result)
        rows: list[dict[str, Any]] = []
        for ev in cast("list[ComplaintEvent]", p.result.events):  # a complaint's are complaint events
            rcpt = ev.get("recipient")
            ip, by = self._sending_ip(p.result, source_ip=ev.get("source_ip"), reporting_mta=ev.get("reporting_mta"))
            rows.append(dict(
                message_id=message_id, occurred_at=parse_when(ev.get("arrival_date")) or p.received_at,
                feedback_type=cut(ev.get("feedback_type") or "abuse", 40), recipient=cut(rcpt, 320),
                recipient_domain=_domain(rcpt), source_ip=cut(ev.get("source_ip"), 45),
                reported_domain=cut(ev.get("reported_domain"), 255), user_agent=cut(ev.get("user_agent"), 255),
                original_mail_from=cut(ev.get("original_mail_from"), 320), sending_ip=ip, attributed_by=by,
                **attributed))
        return rows

    def _webhook(self, p: Parsed, out: Outcome, bounces: list[dict[str, Any]],
                 complaints: list[dict[str, Any]]) -> int:
        """An ESP webhook's events, each with the attribution of its own message, and its volume."""
        facts = cast(WebhookFacts, p.result.detail)
        n = 0
        for part in facts.results:
            one = replace(p, result=part)
            rows = self._bounces(one, out.message_id) if part.kind == "bounce" else self._complaints(one, out.message_id)
            (bounces if part.kind == "bounce" else complaints).extend(rows)
            n += len(rows)
        if facts.volume:
            counts, ids, _now = self._volume.setdefault(WEBHOOK_SOURCE + facts.provider,
                                                        (collections.Counter(), [], p.received_at or utcnow()))
            counts.update(facts.volume)
            ids.append(out.message_id)
        return n

    def _write_volume(self) -> None:
        """The batch's webhook send counts: one statement per origin, whichever messages they came in."""
        for origin, (counts, ids, now) in self._volume.items():
            source = (f"inbound message {ids[0]}" if len(ids) == 1
                      else f"inbound messages {min(ids)}-{max(ids)} ({len(ids)})")
            add_counts(self.session, counts, origin=origin, now=now, source=source)
        self._volume.clear()

    def _duplicate(self, out: Outcome, what: str, other: int | None) -> None:
        out.status = "ignored"
        out.error = f"duplicate {what}: already stored from message {other}"
        self.session.execute(update(m.InboundMessage).where(m.InboundMessage.id == out.message_id)
                             .values(status=out.status, error=out.error))

    def _aggregates(self, p: Parsed, out: Outcome) -> int:
        """Checks each report against the store and the batch; `_write_aggregates` writes them."""
        stored = 0
        reports = _reports(p.result)
        report = m.DmarcAggregateReport
        for rep in reports:
            meta, pol = rep["report_metadata"], rep["policy_published"]
            key = (meta["org_name"], meta["report_id"], pol["domain"],
                   parse_when(meta["begin_date"]), parse_when(meta["end_date"]))
            other = self._dmarc_keys.get(key)
            if other is None:
                other = self.session.execute(select(report.message_id).where(
                    tuple_(report.org_name, report.report_id, report.domain, report.begin, report.end)
                    == tuple_(*key))).scalar()
            if other is not None:
                continue
            self._dmarc_keys[key] = out.message_id
            self._dmarc.append(({
                "message_id": out.message_id, "org_name": key[0], "org_email": meta.get("org_email"),
                "report_id": key[1], "domain": key[2], "begin": key[3], "end": key[4], "policy": dict(pol),
                "errors": meta.get("errors") or None, "record_count": len(rep["records"]),
                "message_count": sum(r["count"] for r in rep["records"])}, rep["records"]))
            stored += 1
        if reports and not stored:
            self._duplicate(out, "DMARC aggregate report", other)
        return stored

    def _write_aggregates(self) -> None:
        """The batch's aggregate reports, then all their records in one COPY (or executemany)."""
        if not self._dmarc:
            return
        report = m.DmarcAggregateReport
        ids = self.session.scalars(insert(report).returning(report.id, sort_by_parameter_order=True),
                                   [row for row, _records in self._dmarc]).all()
        rows: list[tuple] = []
        when: dict[Any, datetime | None] = {}  # a report's records share their interval
        for report_id, (row, records) in zip(ids, self._dmarc):
            begin, end = row["begin"], row["end"]
            rows.extend(_dmarc_record(report_id, r, begin, end, when) for r in records)
        insert_rows(self.session, cast(Table, m.DmarcRecord.__table__), DMARC_RECORD_COLUMNS, rows)
        self._dmarc.clear()

    def _tls(self, p: Parsed, out: Outcome) -> int:
        stored = 0
        reports = _reports(p.result)
        for rep in reports:
            self.session.flush()
            other = self.session.execute(select(m.TlsReport.message_id).where(
                m.TlsReport.organization_name == rep["organization_name"],
                m.TlsReport.report_id == rep["report_id"])).scalar()
            if other is not None:
                continue
            contact = rep.get("contact_info")
            pols = rep.get("policies") or []
            report = m.TlsReport(
                message_id=out.message_id, organization_name=rep["organization_name"], report_id=rep["report_id"],
                begin=parse_when(rep["begin_date"]), end=parse_when(rep["end_date"]),
                contact_info=cut(", ".join(contact) if isinstance(contact, list) else contact, 320),
                successful_sessions=sum(x.get("successful_session_count", 0) for x in pols),
                failed_sessions=sum(x.get("failed_session_count", 0) for x in pols))
            report.policies = [_tls_policy(x) for x in pols]
            self.session.add(report)
            stored += 1
        if reports and not stored:
            self._duplicate(out, "TLS report", other)
        return stored

    def _failure(self, p: Parsed, message_id: int | None) -> int:
        summary = p.result.report or {}
        detail = p.result.detail if isinstance(p.result.detail, dict) else {}
        source = detail.get("source") or {}
        auth = detail.get("auth_failure") or summary.get("auth_failure")
        sample = detail.get("parsed_sample") or {}
        self.session.add(m.DmarcFailureReport(
            message_id=message_id,
            arrival_date=parse_when(summary.get("arrival_date") or detail.get("arrival_date_utc")) or p.received_at,
            feedback_type=summary.get("feedback_type") or detail.get("feedback_type") or "auth-failure",
            source_ip=cut(summary.get("source_ip") or source.get("ip_address"), 45),
            reported_domain=cut(summary.get("reported_domain") or detail.get("reported_domain"), 255),
            auth_failure=cut(", ".join(auth) if isinstance(auth, list) else auth, 255),
            delivery_result=cut(summary.get("delivery_result") or detail.get("delivery_result"), 40),
            original_mail_from=cut(detail.get("original_mail_from"), 320),
            original_rcpt_to=cut(detail.get("original_rcpt_to"), 320),
            subject=sample.get("subject") if isinstance(sample, dict) else None,
            detail=_jsonable(detail) or None))
        return 1


def _reports(r: ParseResult) -> list[dict[str, Any]]:
    if r.reports:
        return [x["detail"] if isinstance(x, dict) and "detail" in x else x for x in r.reports]
    return [r.detail] if isinstance(r.detail, dict) else []


DMARC_RECORD_COLUMNS = (
    "report_id", "interval_begin", "interval_end", "source_ip", "source_country", "source_reverse_dns",
    "source_base_domain", "count", "disposition", "dkim_aligned", "spf_aligned", "dmarc_pass", "header_from",
    "envelope_from", "envelope_to", "dkim_results", "spf_results", "policy_override_reasons")


def _dmarc_record(report_id: int, r: dict[str, Any], begin: datetime | None, end: datetime | None,
                  when: dict[Any, datetime | None]) -> tuple:
    """One row of dmarc_records, in DMARC_RECORD_COLUMNS order, from parsedmarc's record;
    `when` keeps the dates already read."""
    src, ident = r.get("source") or {}, r.get("identifiers") or {}
    align, pe = r.get("alignment") or {}, r.get("policy_evaluated") or {}
    auth = r.get("auth_results") or {}
    first, last = r.get("interval_begin"), r.get("interval_end")
    if first not in when:
        when[first] = parse_when(first)
    if last not in when:
        when[last] = parse_when(last)
    return (
        report_id, when[first] or begin, when[last] or end,
        src.get("ip_address") or "", cut(src.get("country"), 2), cut(src.get("reverse_dns"), 255),
        cut(src.get("base_domain"), 255), int(r.get("count") or 0), pe.get("disposition") or r.get("disposition"),
        bool(align.get("dkim")), bool(align.get("spf")), bool(align.get("dmarc")),
        cut(ident.get("header_from"), 255), cut(ident.get("envelope_from"), 255),
        cut(ident.get("envelope_to"), 255), auth.get("dkim") or None, auth.get("spf") or None,
        pe.get("policy_override_reasons") or None)


def _tls_policy(x: dict[str, Any]) -> m.TlsPolicy:
    pol = m.TlsPolicy(policy_type=x.get("policy_type"), policy_domain=x.get("policy_domain") or "",
                      policy_strings=x.get("policy_strings") or None,
                      mx_host_patterns=x.get("mx_host_patterns") or None,
                      successful_sessions=int(x.get("successful_session_count") or 0),
                      failed_sessions=int(x.get("failed_session_count") or 0))
    pol.failures = [m.TlsFailureDetail(
        result_type=f.get("result_type") or "unknown", sending_mta_ip=cut(f.get("sending_mta_ip"), 45),
        receiving_mx_hostname=cut(f.get("receiving_mx_hostname"), 255),
        receiving_mx_helo=cut(f.get("receiving_mx_helo"), 255),
        receiving_ip=cut(f.get("receiving_ip") or f.get("ip_address"), 45),
        failed_sessions=int(f.get("failed_session_count") or 0),
        additional_information=f.get("additional_info_uri") or f.get("additional_information"),
        failure_reason_code=cut(f.get("failure_reason_code"), 255)) for f in x.get("failure_details") or []]
    return pol


def stored_failures(session: Session, pairs: list[tuple[str, str]], *, from_logs: bool = False
                    ) -> set[tuple[str, str]]:
    """Of these (Message-ID, recipient) pairs, those a stored bounce event gives, as (the
    Message-ID without <>, the recipient in lower case); with `from_logs`, only events read
    from an MTA log. Both sides of "one failure told by the log and by the report" ask this."""
    if not pairs:
        return set()
    names = sorted({n for _, rcpt in pairs for n in (rcpt, rcpt.lower())})
    ids = {mid.strip().strip("<>") for mid, _ in pairs}
    e, msg = m.BounceEvent, m.InboundMessage
    seen: set[tuple[str, str]] = set()
    for i in range(0, len(names), 500):
        query = select(e.orig_message_id, e.recipient).where(e.recipient.in_(names[i:i + 500]),
                                                            e.orig_message_id.is_not(None))
        if from_logs:
            query = query.join(msg, msg.id == e.message_id).where(msg.source.like("log:%"))
        for mid, rcpt in session.execute(query):
            mid = mid.strip().strip("<>")
            if mid in ids:
                seen.add((mid, (rcpt or "").lower()))
    return seen


def _domain(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return domain_of(address)[:255]


def _jsonable(value: Any) -> Any:
    """`value` with anything JSON cannot hold turned into text (sample bytes, datetimes)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
