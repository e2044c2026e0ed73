"""A hand-built fortnight for the digest tests: sends, bounces, complaints, DMARC and TLS
reports, a blocklist listing, suppression changes and an open alert, written straight into
the store; then the rollups, DMARC sources and scores are computed as the jobs do."""
from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import func, select

from analysis import rollups
from analysis.digest.schedule import Period
from analysis.dmarc_intel import update_sources
from analysis.scores import score_pending
from store.alerts import raise_alert
from store.checks import BlocklistCheck
from store.models import (BounceEvent, ComplaintEvent, DmarcAggregateReport, DmarcRecord, TlsFailureDetail,
                          TlsPolicy, TlsReport)
from store.suppressions import add_suppression
from store.volume import SendLog
from tests.analysis.history import History

WEEK = Period("weekly", date(2026, 6, 8), date(2026, 6, 14))  # Monday to Sunday
BEFORE = WEEK.previous()
NOW = datetime(2026, 6, 15, 6, 0, tzinfo=timezone.utc)  # Monday 08:00 in Paris
DOMAINS = ("send.example.com", "news.example.org")
_n = itertools.count(1)


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), timezone.utc)


def build(sessions) -> None:
    h = History(sessions)
    days = [BEFORE.start + timedelta(days=i) for i in range(14)]
    for i, day in enumerate(days):
        with sessions.begin() as s:
            for j in range(200 + 20 * i):
                domain = DOMAINS[j % 2]
                provider, rdomain = ("google", "gmail.com") if j % 3 else ("microsoft", "outlook.com")
                s.add(SendLog(sent_at=at(day, 9), recipient=f"r{i}-{j}@{rdomain}", recipient_domain=rdomain,
                              provider=provider, sending_domain=domain, sending_ip="192.0.2.10",
                              campaign=("spring", "summer")[(j // 2) % 2], result="bounced" if j < 3 else "sent",
                              message_id=f"<{i}.{j}@{domain}>"))
        with sessions() as s:
            ids = s.scalars(select(SendLog.id).where(SendLog.sent_at == at(day, 9)).order_by(SendLog.id)).all()
        # bounces: hard ones, Microsoft blocks, a soft one; complaints on some days
        for k in range(3):
            _bounce(h, sessions, ids[k], "userunknown", "5.1.1", f"550 5.1.1 <r{i}-{k}>: Recipient address rejected: "
                    "User unknown in virtual mailbox table", day)
        for k in range(3, 3 + (i % 4) + 1):
            _bounce(h, sessions, ids[k], "blocked", "5.7.515", "550 5.7.515 Access denied, sending domain "
                    "does not meet the required authentication level", day)
        _bounce(h, sessions, ids[10], "mailboxfull", "4.2.2", "452 4.2.2 The email account is over quota", day)
        if i % 3 == 0:
            for k in range(20, 20 + (i % 5) + 1):
                _complaint(sessions, ids[k], day)
    _dmarc(sessions)
    _tls(sessions)
    with sessions.begin() as s:
        s.add(BlocklistCheck(day=date(2026, 6, 10), dimension="sending_ip", key="192.0.2.10", zone="bl.example.net",
                             status="listed", listed=True, answer="127.0.0.2", first_checked_at=at(date(2026, 6, 10)),
                             checked_at=at(date(2026, 6, 10)), checks=1))
        add_suppression(s, "gone@example.net", reason="userunknown", source="bounce", now=at(date(2026, 6, 9)))
        add_suppression(s, "angry@example.net", reason="abuse", source="complaint", now=at(date(2026, 6, 11)))
        add_suppression(s, "old@example.net", reason="userunknown", source="bounce", now=at(date(2026, 6, 2)))
        raise_alert(s, rule="complaint_rate", dimension="campaign", key="summer", severity="warning",
                    message="complaint rate 0.15% on campaign summer", now=at(date(2026, 6, 12)))
    with sessions.begin() as s:
        rollups.update(s, now=NOW)
        update_sources(s, now=NOW)
    with sessions.begin() as s:
        score_pending(s, now=NOW)


def _message(h: History, day: date, kind: str) -> int:
    return h.message(f"Subject: {kind} {next(_n)}\n\nx\n".encode(), kind=kind, received_at=at(day, 12))


def _bounce(h, sessions, send_id: int, reason: str, status: str, diagnostic: str, day: date) -> None:
    from ingest.bounce.rules import CATEGORY

    mid = _message(h, day, "bounce")
    with sessions.begin() as s:
        row = s.get(SendLog, send_id)
        s.add(BounceEvent(message_id=mid, occurred_at=at(day, 11), recipient=row.recipient,
                          recipient_domain=row.recipient_domain, provider=row.provider, action="failed",
                          status=status, reply_code=diagnostic[:3], diagnostic=diagnostic, reason=reason,
                          hard=reason == "userunknown", category=CATEGORY[reason], send_id=send_id,
                          from_domain=row.sending_domain))


def _complaint(sessions, send_id: int, day: date) -> None:
    h = History(sessions)
    mid = _message(h, day, "complaint")
    with sessions.begin() as s:
        row = s.get(SendLog, send_id)
        s.add(ComplaintEvent(message_id=mid, occurred_at=at(day, 15), feedback_type="abuse", recipient=row.recipient,
                             recipient_domain=row.recipient_domain, send_id=send_id, from_domain=row.sending_domain))


def _dmarc(sessions) -> None:
    h = History(sessions)
    for day in (date(2026, 6, 3), date(2026, 6, 10), date(2026, 6, 11)):
        mid = _message(h, day, "dmarc_aggregate")
        with sessions.begin() as s:
            report = DmarcAggregateReport(message_id=mid, org_name="google.com", report_id=f"r{next(_n)}",
                                          domain="send.example.com", begin=at(day, 0), end=at(day, 23),
                                          policy={"p": "none"}, record_count=2, message_count=0)
            rows = [("192.0.2.10", 900, True, True), ("203.0.113.66", 40 if day.day > 5 else 0, False, False)]
            for ip, count, dkim, spf in rows:
                if count:
                    report.records.append(DmarcRecord(interval_begin=at(day, 0), interval_end=at(day, 23),
                                                      source_ip=ip, count=count, dkim_aligned=dkim, spf_aligned=spf,
                                                      dmarc_pass=dkim or spf, header_from="send.example.com",
                                                      disposition="none"))
            report.message_count = sum(r.count for r in report.records)
            s.add(report)


def _tls(sessions) -> None:
    h = History(sessions)
    day = date(2026, 6, 12)
    mid = _message(h, day, "smtp_tls")
    with sessions.begin() as s:
        report = TlsReport(message_id=mid, organization_name="Google Inc.", report_id="tls-1", begin=at(day, 0),
                           end=at(day, 23), successful_sessions=950, failed_sessions=50)
        policy = TlsPolicy(policy_type="sts", policy_domain="send.example.com", successful_sessions=950,
                           failed_sessions=50)
        policy.failures.append(TlsFailureDetail(result_type="certificate-expired", receiving_mx_hostname="mx1.send.example.com",
                                                failed_sessions=50))
        report.policies.append(policy)
        s.add(report)


# -- what the store says, counted straight from the event tables ---------------------------------

def expected(sessions, period: Period, domain: str | None = None) -> dict[str, int]:
    lo, hi = at(period.start, 0), at(period.end + timedelta(days=1), 0)
    with sessions() as s:
        def count(model, column, *where):
            q = select(func.count()).select_from(model).where(column >= lo, column < hi, *where)
            if domain:
                q = q.join(SendLog, SendLog.id == model.send_id).where(SendLog.sending_domain == domain) \
                    if model is not SendLog else q.where(SendLog.sending_domain == domain)
            return s.scalar(q)
        return {"sent": count(SendLog, SendLog.sent_at, SendLog.result.in_(("sent", "bounced"))),
                # the sends that could complain: Microsoft sends complaint reports, Gmail none
                "sent_fbl": count(SendLog, SendLog.sent_at, SendLog.result.in_(("sent", "bounced")),
                                  SendLog.provider == "microsoft"),
                "delivered": count(SendLog, SendLog.sent_at, SendLog.result == "sent"),
                "complaints": count(ComplaintEvent, ComplaintEvent.occurred_at),
                "hard": count(BounceEvent, BounceEvent.occurred_at, BounceEvent.hard.is_(True)),
                "bounced": count(BounceEvent, BounceEvent.occurred_at),
                "blocked": count(BounceEvent, BounceEvent.occurred_at, BounceEvent.category == "reputation")}


def fortnight_store(database):
    """The store `database` (empty) migrated and holding the fortnight (build it once per module)."""
    from store.engine import session_factory, upgrade

    upgrade(database)
    sessions = session_factory(database)
    build(sessions)
    return sessions
