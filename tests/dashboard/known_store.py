"""A store with known content for the dashboard's callback tests: rows written into the
store, then the real analysis (rollups, DMARC sources, scores) run over them."""
from __future__ import annotations

import hashlib
import zlib
from datetime import date, datetime, timedelta, timezone

NOW = datetime(2024, 5, 31, 12, 0, tzinfo=timezone.utc)
START, END = date(2024, 5, 1), date(2024, 5, 30)
SEARCH = f"?start={START}&end={END}"
DOMAIN = "news.example.com"
IPS = ("192.0.2.10", "192.0.2.11")
SPOOF_IP = "203.0.113.66"
BLOCK_DAY = date(2024, 5, 20)
SPIKE_DAY = date(2024, 5, 25)
# per day: (provider, ip, campaign) -> sent
VOLUME = {("google", IPS[0], "spring"): 1000, ("microsoft", IPS[1], "summer"): 500}

DSN = b"""From: MAILER-DAEMON@mx.example.net
To: bounces@news.example.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-1@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone0@gmail.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 The email account that you tried to reach does not exist

--B--
"""


def fill(sessions) -> None:
    from analysis.dmarc_intel import update_sources
    from analysis.rollups import update
    from analysis.scores import score_pending
    from store.alerts import raise_alert
    from store.checks import JobRun, PostureCheck
    from store.models import (BounceEvent, ComplaintEvent, DmarcAggregateReport, DmarcRecord, InboundMessage,
                              TlsFailureDetail, TlsPolicy, TlsReport)
    from store.suppressions import add_suppression
    from store.volume import VolumeImport

    with sessions.begin() as s:
        def message(raw: bytes, kind: str, at: datetime) -> int:
            msg = InboundMessage(sha256=hashlib.sha256(raw + kind.encode() + at.isoformat().encode()).hexdigest(),
                                 received_at=at, source="file", size=len(raw), kind=kind, status="parsed",
                                 raw_zlib=zlib.compress(raw))
            s.add(msg)
            s.flush()
            return msg.id

        day = START
        while day <= END:
            for (provider, ip, campaign), sent in VOLUME.items():
                s.add(VolumeImport(day=day, sending_domain=DOMAIN, sending_ip=ip, provider=provider,
                                   campaign=campaign, sent=sent, rolled=0, pending=True, imported_at=NOW))
            day += timedelta(days=1)
        at = datetime.combine(BLOCK_DAY, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=9)
        dsn_id = message(DSN, "bounce", at)
        for i in range(10):  # hard bounces at Google
            s.add(BounceEvent(message_id=dsn_id, occurred_at=at + timedelta(minutes=i), recipient=f"gone{i}@gmail.com",
                              recipient_domain="gmail.com", provider="google", action="failed", status="5.1.1",
                              reply_code="550", diagnostic="550 5.1.1 The email account that you tried to reach does "
                              "not exist", reason="userunknown", hard=True, category="hygiene",
                              from_domain=DOMAIN, campaign="spring"))
        for i in range(40):  # Microsoft blocks us that day
            s.add(BounceEvent(message_id=dsn_id, occurred_at=at + timedelta(hours=1, minutes=i),
                              recipient=f"user{i}@outlook.com", recipient_domain="outlook.com", provider="microsoft",
                              action="failed", status="5.7.1", reply_code="550",
                              diagnostic="550 5.7.1 Unfortunately, messages from [192.0.2.11] weren't sent. (S3150)",
                              reason="blocked", hard=False, category="reputation", from_domain=DOMAIN,
                              campaign="summer", sending_ip="192.0.2.11", attributed_by="diagnostic"))
        spike = datetime.combine(SPIKE_DAY, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=10)
        arf_id = message(b"Subject: complaint\n\nabuse\n", "complaint", spike)
        for i in range(6):  # 6 / 500 = 1.2 % on campaign summer
            s.add(ComplaintEvent(message_id=arf_id, occurred_at=spike + timedelta(minutes=i), feedback_type="abuse",
                                 recipient=f"angry{i}@outlook.com", recipient_domain="outlook.com",
                                 from_domain=DOMAIN, campaign="summer"))
        rua_id = message(b"<feedback/>", "dmarc_aggregate", NOW - timedelta(days=3))
        report = DmarcAggregateReport(message_id=rua_id, org_name="google.com",
                                      org_email="noreply-dmarc-support@google.com", report_id="r1", domain=DOMAIN,
                                      begin=datetime(2024, 5, 27, tzinfo=timezone.utc),
                                      end=datetime(2024, 5, 28, tzinfo=timezone.utc), policy={"p": "none"},
                                      record_count=2, message_count=1100)
        s.add(report)
        s.flush()
        for ip, count, ok, disposition in ((IPS[0], 1000, True, "none"), (SPOOF_IP, 100, False, "reject")):
            s.add(DmarcRecord(report_id=report.id, interval_begin=report.begin, interval_end=report.end,
                              source_ip=ip, source_country="NL" if ip == SPOOF_IP else "US",
                              source_reverse_dns="mail.example.com" if ok else None, count=count,
                              disposition=disposition, dkim_aligned=ok, spf_aligned=ok, dmarc_pass=ok,
                              header_from=DOMAIN,
                              dkim_results=[{"domain": DOMAIN, "selector": "s1", "result": "pass" if ok else "fail"}],
                              spf_results=[{"domain": DOMAIN if ok else "spoof.example", "scope": "mfrom",
                                            "result": "pass" if ok else "fail"}]))
        tls_id = message(b"{}", "smtp_tls", NOW - timedelta(days=2))
        tls = TlsReport(message_id=tls_id, organization_name="Google Inc.", report_id="t1",
                        begin=datetime(2024, 5, 28, tzinfo=timezone.utc), end=datetime(2024, 5, 29, tzinfo=timezone.utc),
                        successful_sessions=900, failed_sessions=7)
        policy = TlsPolicy(policy_type="sts", policy_domain=DOMAIN, successful_sessions=900, failed_sessions=7)
        policy.failures.append(TlsFailureDetail(result_type="certificate-expired", receiving_mx_hostname="mx1.news.example.com",
                                                failed_sessions=7))
        tls.policies.append(policy)
        s.add(tls)
        add_suppression(s, "gone0@gmail.com", reason="userunknown", source="bounce", now=NOW - timedelta(days=11),
                        event_table="bounce_events", event_id=1, details={"rule": "hygiene"})
        add_suppression(s, "angry0@outlook.com", reason="complaint", source="complaint", now=NOW - timedelta(days=6))
        raise_alert(s, rule="block_spike", dimension="provider", key="microsoft", severity="critical",
                    message="Block spike at microsoft", now=NOW - timedelta(days=11))
        s.add(JobRun(job="rollups", trigger="scheduler", started_at=NOW - timedelta(minutes=5),
                     finished_at=NOW - timedelta(minutes=5) + timedelta(seconds=2), rows=12))
        s.add(PostureCheck(subject=DOMAIN, check="spf", status="ok", summary="SPF ok", detail={}, fingerprint="a",
                           first_seen_at=NOW - timedelta(days=20), checked_at=NOW))
        s.add(PostureCheck(subject=DOMAIN, check="dkim:s1", status="ok", summary="DKIM ok", detail={},
                           fingerprint="b", first_seen_at=NOW - timedelta(days=20), checked_at=NOW))
        s.add(PostureCheck(subject=DOMAIN, check="dmarc", status="warning", summary="DMARC p=none", detail={},
                           fingerprint="c", first_seen_at=NOW - timedelta(days=20), checked_at=NOW))
    with sessions.begin() as s:
        update(s, now=NOW)
        update_sources(s, now=NOW)
        score_pending(s, now=NOW)
