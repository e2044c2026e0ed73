"""Counting log records into the store, inside the caller's transaction.

- a `sent` line adds one to the day's volume of its sending domain, sending IP, provider and
  campaign, in `volume_imports` under the origin `log:<mta>` (where `postwatch volume
  import` keeps its counts, so the rollups, scores and alerts count both alike); a
  notification (empty envelope sender) and a send of postwatch's own sender (a signed VERP
  return path: its send log counts it already) add nothing;
- a `bounced` or `expired` line becomes a bounce event, classified like the recipients of a
  DSN. The inbound message those events point at is the batch of failed lines they were
  read from (source `log:<mta>`, the lines as its raw bytes, `origin` naming the file and
  line numbers), so every event can still be traced to the text behind it;
- a `deferred` line becomes a bounce event with action `delayed`, classified like a bounce:
  the rollups count it as a deferral (`deferred`), never as a bounce, and the suppression
  rules never count it (a delay is not a failure); a webhook's deferral is stored alike.

Each counted line's digest goes into `log_lines` first: a line already there (the same file
read again, a rotated copy) counts nothing.
"""
from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from ingest.bounce.classify import classify
from ingest.bounce.rules import RuleSet, load_rules
from ingest.config import IngestConfig
from ingest.facts import stored_failures
from ingest.logs.records import FAILED, LineError, LogRecord
from ingest.verp import decode
from store import models as m
from store.addresses import domain_of
from store.bulk import insert_rows
from store.columns import cut
from store.mta_logs import LogLine
from store.volume_counts import CountKey, add_counts

ERRORS_KEPT = 20  # unreadable lines quoted in the summary; the rest are only counted
# maps recipient domains to provider names (the analysis' resolver); without one, a
# recipient domain stands for its provider, as in a volume CSV
ProviderMap = Callable[[Session, set[str]], dict[str, str]]
BOUNCE_COLUMNS = (
    "message_id", "occurred_at", "recipient", "recipient_domain", "provider", "action", "status", "reply_code",
    "diagnostic", "remote_mta", "reporting_mta", "smtp_command", "reason", "hard", "category", "rule", "conflict",
    "sending_ip", "attributed_by", "orig_message_id", "from_domain", "feedback_id", "list_id", "campaign",
    "verp_token", "send_id")
ACTIONS = {"expired": "expired", "deferred": "delayed"}  # a bounce event's action by outcome; else failed
COMPLAINT_COLUMNS = (
    "message_id", "occurred_at", "feedback_type", "recipient", "recipient_domain", "source_ip", "reported_domain",
    "user_agent", "original_mail_from", "sending_ip", "attributed_by", "orig_message_id", "from_domain",
    "feedback_id", "list_id", "campaign", "verp_token", "send_id")


@dataclass
class LogTotals:
    lines: int = 0  # lines read
    sent: int = 0  # counted as volume
    bounced: int = 0  # bounce events written (bounced and expired)
    complaints: int = 0  # complaint events written (feedback reports the MTA received)
    deferred: int = 0
    notifications: int = 0  # notifications written or delivered by the MTA itself
    own: int = 0  # sends of postwatch's own sender (its send log counts them)
    duplicates: int = 0  # result lines counted before
    reported: int = 0  # failures already stored from the non-delivery report the MTA mailed
    errors: int = 0  # unreadable lines
    error_lines: list[str] = field(default_factory=list)  # the first ERRORS_KEPT, "FILE:LINE: why"
    reasons: dict[str, int] = field(default_factory=dict)  # of the bounce events written

    def add_error(self, path: str, error: LineError) -> None:
        self.errors += 1
        if len(self.error_lines) < ERRORS_KEPT:
            self.error_lines.append(f"{path}:{error.lineno}: {error.error}: {error.line[:200]!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "sent": self.sent, "bounced": self.bounced, "complaints": self.complaints,
                "deferred": self.deferred,
                "notifications": self.notifications, "own_sends": self.own, "duplicates": self.duplicates,
                "reported": self.reported,
                "errors": self.errors, "error_lines": self.error_lines, "reasons": dict(sorted(self.reasons.items()))}


def digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8", "surrogateescape")).hexdigest()[:32]


class LogWriter:
    def __init__(self, mta: str, config: IngestConfig | None = None, providers: ProviderMap | None = None,
                 rules: RuleSet | None = None) -> None:
        self.origin = f"log:{mta}"
        self.config = config or IngestConfig()
        self.providers = providers
        self.rules = rules if rules is not None else load_rules(self.config)

    def write(self, session: Session, records: Iterable[LogRecord], *, path: str, now: datetime,
              totals: LogTotals) -> None:
        fresh = self._fresh(session, records, totals)
        if not fresh:
            return
        insert_rows(session, cast(Table, LogLine.__table__), ("digest", "day", "outcome"),
                    [(d, _day(r.when), r.outcome) for d, r in fresh.items()])
        sent: list[LogRecord] = []
        failed: list[LogRecord] = []
        complaints: list[LogRecord] = []
        verp: dict[str, Any] = {}
        deferred: list[LogRecord] = []
        for r in fresh.values():
            if r.outcome == "deferred":
                deferred.append(r)
            elif r.outcome == "dsn":
                totals.notifications += 1
            elif r.outcome == "sent":
                if r.sender == "":
                    totals.notifications += 1
                elif self._own(r.sender, verp):
                    totals.own += 1
                else:
                    sent.append(r)
            elif r.outcome in FAILED:
                failed.append(r)
            elif r.outcome == "complaint":
                complaints.append(r)
        if sent:
            self._volume(session, sent, path, now)
            totals.sent += len(sent)
        if failed or deferred:
            self._bounces(session, failed, deferred, path, now, verp, totals)
        if complaints:
            self._complaints(session, complaints, path, now, verp, totals)

    def _fresh(self, session: Session, records: Iterable[LogRecord], totals: LogTotals) -> dict[str, LogRecord]:
        """The records whose lines were not counted before, by digest."""
        batch: dict[str, LogRecord] = {}
        for r in records:
            d = digest(r.line)
            if d in batch:
                totals.duplicates += 1
            else:
                batch[d] = r
        keys = list(batch)
        conn = session.connection()
        if conn.dialect.name == "postgresql":  # the digests as one array: one parameter, few round trips
            found = (d for i in range(0, len(keys), 20_000) for (d,) in conn.exec_driver_sql(
                "SELECT digest FROM log_lines WHERE digest = ANY(%s)", (keys[i:i + 20_000],)))
        else:  # SQLite: up to 900 parameters a query
            found = (d for i in range(0, len(keys), 900)
                     for (d,) in conn.execute(select(LogLine.digest).where(LogLine.digest.in_(keys[i:i + 900]))))
        for d in found:
            del batch[d]
            totals.duplicates += 1
        return batch

    def _own(self, sender: str | None, cache: dict[str, Any]) -> bool:
        """Whether `sender` is a signed return path of postwatch's own sender."""
        return bool(self.config.verp_secret) and self._verp(sender, cache)[0] is not None

    def _volume(self, session: Session, sent: list[LogRecord], path: str, now: datetime) -> None:
        rdomains = [domain_of(r.recipient) for r in sent]
        domains = set(rdomains) - {""}
        mapping = self.providers(session, domains) if self.providers and domains else {}
        senders: dict[str | None, str] = {}  # sender -> its domain: a log has few senders
        counts: dict[CountKey, int] = {}  # add_counts cuts the keys to the columns' lengths
        for r, rdomain in zip(sent, rdomains):
            domain = senders.get(r.sender)
            if domain is None:
                domain = senders[r.sender] = domain_of(r.sender)
            key = (_day(r.when), domain, r.sending_ip or "", mapping.get(rdomain) or rdomain, r.campaign or "")
            counts[key] = counts.get(key, 0) + 1
        add_counts(session, counts, origin=self.origin, now=now, source=path)

    def _not_reported(self, session: Session, failed: list[LogRecord], totals: LogTotals) -> list[LogRecord]:
        """`failed` without the failures already stored as a bounce event for the same message
        (Message-ID) and recipient: the non-delivery report the MTA mailed, collected first."""
        seen = stored_failures(session, [(r.message_id, r.recipient) for r in failed
                                         if r.message_id and r.recipient])
        if not seen:
            return failed
        out = [r for r in failed if (r.message_id, (r.recipient or "").lower()) not in seen]
        totals.reported += len(failed) - len(out)
        return out

    def _message(self, session: Session, records: list[LogRecord], path: str, now: datetime, kind: str) -> int:
        """The inbound message the events of `records` point at: their lines."""
        raw = "".join(r.line.replace("\0", " ") + "\n" for r in records).encode("utf-8", "surrogateescape")
        sha = hashlib.sha256(raw).hexdigest()
        message_id = session.scalar(select(m.InboundMessage.id).where(m.InboundMessage.sha256 == sha))
        if message_id is None:
            message = m.InboundMessage(
                sha256=sha, received_at=now, source=self.origin[:40],
                origin=f"{path}:{records[0].lineno}-{records[-1].lineno}", envelope_from=None, envelope_to=None,
                size=len(raw), kind=kind, status="parsed", error=None, raw_zlib=zlib.compress(raw, 1),
                attribution={"mta_log": path})
            session.add(message)
            session.flush()
            message_id = message.id
        return message_id

    def _verp(self, sender: str | None, cache: dict[str, Any]) -> tuple[str | None, int | None]:
        """The signed token of a return path of ours, and the send it names."""
        if not sender or "+" not in sender:
            return None, None
        if sender not in cache:
            cache[sender] = decode(sender, self.config.verp_secret or None)
        v = cache[sender]
        if v is not None and v.kind == "token" and v.valid:
            return v.token, v.send_id
        return None, None

    def _complaints(self, session: Session, records: list[LogRecord], path: str, now: datetime,
                    verp: dict[str, Any], totals: LogTotals) -> None:
        message_id = self._message(session, records, path, now, "complaint")
        rows = []
        for r in records:
            token, send_id = self._verp(r.sender, verp)
            sdomain = domain_of(r.sender)[:255] or None
            rows.append((
                message_id, r.when, cut(r.feedback_type or "abuse", 40), cut(r.recipient, 320),
                domain_of(r.recipient)[:255] or None, cut(r.sending_ip, 45), sdomain,
                None, cut(r.sender, 320), cut(r.sending_ip, 45), "mta_log" if r.sending_ip else None,
                cut(r.message_id, 998), sdomain, None, None, cut(r.campaign, 255),
                cut(token, 64), send_id))
        insert_rows(session, cast(Table, m.ComplaintEvent.__table__), COMPLAINT_COLUMNS, rows)
        totals.complaints += len(rows)

    def _bounces(self, session: Session, failed: list[LogRecord], deferred: list[LogRecord], path: str,
                 now: datetime, verp: dict[str, Any], totals: LogTotals) -> None:
        """Failures (not those stored from the MTA's own report already) and deferrals as
        bounce events, pointing at one inbound message made of their lines."""
        records = self._not_reported(session, failed, totals) + deferred
        if not records:
            return
        message_id = self._message(session, sorted(records, key=lambda r: r.lineno), path, now, "bounce")
        rows = []
        for r in records:
            action = ACTIONS.get(r.outcome, "failed")
            event = {"recipient": r.recipient, "action": action, "status": r.status, "reply_code": r.reply_code,
                     "diagnostic": r.diagnostic, "remote_mta": r.remote_mta, "smtp_command": r.smtp_command,
                     "mta_category": r.mta_category}
            c = classify(event, rules=self.rules)
            token, send_id = self._verp(r.sender, verp)
            rdomain = domain_of(r.recipient)
            rows.append((
                message_id, r.when, cut(r.recipient, 320), rdomain[:255] or None, cut(c.get("provider"), 40),
                action, cut(r.status or c.get("status"), 16), cut(r.reply_code, 3), r.diagnostic,
                cut(r.remote_mta, 255), None, cut(r.smtp_command, 16), c["reason"], bool(c["hard_bounce"]),
                c["category"], c.get("rule"), c.get("conflict"), cut(r.sending_ip, 45),
                "mta_log" if r.sending_ip else None, cut(r.message_id, 998), domain_of(r.sender)[:255] or None,
                None, None, cut(r.campaign, 255), cut(token, 64), send_id))
            if action == "delayed":
                totals.deferred += 1
            else:
                totals.reasons[c["reason"]] = totals.reasons.get(c["reason"], 0) + 1
                totals.bounced += 1
        insert_rows(session, cast(Table, m.BounceEvent.__table__), BOUNCE_COLUMNS, rows)


def _day(when: datetime) -> date:
    return when.astimezone(timezone.utc).date()
