"""Hand-built event histories for the rollup, score, DMARC and A/B tests: rows written straight
into the store (one inbound message per event, as the pipeline would)."""
from __future__ import annotations

import hashlib
import itertools
from datetime import date, datetime, time, timedelta, timezone

from store.models import (BounceEvent, ComplaintEvent, DmarcAggregateReport, DmarcRecord, InboundMessage,
                          TlsPolicy, TlsReport)
from store.volume import SendLog

CATEGORY = {"userunknown": "hygiene", "hostunknown": "hygiene", "mailboxfull": "transient",
            "blocked": "reputation", "badreputation": "reputation", "spamdetected": "content",
            "rejected": "policy", "delivered": "delivered", "vacation": "auto_reply", "undefined": "unknown"}
HARD = {"userunknown", "hostunknown"}
_seq = itertools.count(1)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=timezone.utc)


def message(session, when: datetime, kind: str = "bounce") -> InboundMessage:
    n = next(_seq)
    msg = InboundMessage(sha256=hashlib.sha256(f"history-a {n}".encode()).hexdigest(), received_at=when,
                         source="file", size=1, kind=kind, status="parsed")
    session.add(msg)
    session.flush()
    return msg


def send(session, day: date, *, recipient: str = "a@gmail.com", sending_domain: str = "news.example.com",
         sending_ip: str | None = "192.0.2.10", campaign: str | None = "c1", result: str = "sent",
         provider: str | None = None, pool: str | None = None, tag: str | None = None,
         dkim_selector: str | None = None, hour: int = 9) -> SendLog:
    row = SendLog(sent_at=at(day, hour), recipient=recipient, recipient_domain=recipient.rpartition("@")[2],
                  provider=provider, sending_domain=sending_domain, sending_ip=sending_ip, campaign=campaign,
                  result=result, pool=pool, tag=tag, dkim_selector=dkim_selector)
    session.add(row)
    session.flush()
    return row


def bounce(session, day: date, reason: str = "userunknown", *, recipient: str = "a@gmail.com",
           from_domain: str | None = "news.example.com", campaign: str | None = None,
           send_id: int | None = None, action: str | None = "failed", hour: int = 12,
           conflict: str | None = None, sending_ip: str | None = None) -> BounceEvent:
    msg = message(session, at(day, hour))
    row = BounceEvent(message_id=msg.id, occurred_at=at(day, hour), recipient=recipient,
                      recipient_domain=recipient.rpartition("@")[2], reason=reason,
                      hard=reason in HARD and conflict is None, category=CATEGORY[reason], from_domain=from_domain,
                      campaign=campaign, send_id=send_id, action=action, conflict=conflict,
                      sending_ip=sending_ip, attributed_by="received" if sending_ip else None)
    session.add(row)
    session.flush()
    return row


def complaint(session, day: date, feedback_type: str = "abuse", *, recipient: str = "a@gmail.com",
              from_domain: str | None = "news.example.com", source_ip: str | None = None,
              send_id: int | None = None, campaign: str | None = None) -> ComplaintEvent:
    msg = message(session, at(day), "complaint")
    row = ComplaintEvent(message_id=msg.id, occurred_at=at(day), feedback_type=feedback_type, recipient=recipient,
                         recipient_domain=recipient.rpartition("@")[2], from_domain=from_domain,
                         source_ip=source_ip, send_id=send_id, campaign=campaign,
                         sending_ip=source_ip, attributed_by="source_ip" if source_ip else None)  # as the writer does
    session.add(row)
    session.flush()
    return row


def dmarc_report(session, day: date, domain: str, records: list[dict], *, org: str = "google.com",
                 org_email: str = "noreply-dmarc-support@google.com", policy: str = "none") -> DmarcAggregateReport:
    msg = message(session, at(day), "dmarc_aggregate")
    rep = DmarcAggregateReport(message_id=msg.id, org_name=org, org_email=org_email, report_id=f"r{next(_seq)}",
                               domain=domain, begin=at(day, 0), end=at(day + timedelta(days=1), 0),
                               policy={"p": policy}, record_count=len(records),
                               message_count=sum(r.get("count", 1) for r in records))
    for r in records:
        rep.records.append(DmarcRecord(
            interval_begin=at(day, 0), interval_end=at(day + timedelta(days=1), 0), source_ip=r["ip"],
            source_base_domain=r.get("base"), source_reverse_dns=r.get("rdns"), count=r.get("count", 1),
            dkim_aligned=r.get("dkim", False), spf_aligned=r.get("spf", False),
            dmarc_pass=r.get("dkim", False) or r.get("spf", False), header_from=r.get("header_from", domain),
            policy_override_reasons=r.get("overrides")))
    session.add(rep)
    session.flush()
    return rep


def tls_report(session, day: date, policy_domain: str, ok: int, failed: int, org: str = "Google Inc.") -> TlsReport:
    msg = message(session, at(day), "smtp_tls")
    rep = TlsReport(message_id=msg.id, organization_name=org, report_id=f"t{next(_seq)}", begin=at(day, 0),
                    end=at(day + timedelta(days=1), 0), successful_sessions=ok, failed_sessions=failed)
    rep.policies.append(TlsPolicy(policy_type="sts", policy_domain=policy_domain, successful_sessions=ok,
                                  failed_sessions=failed))
    session.add(rep)
    session.flush()
    return rep
