"""Every bounce and complaint on the IP that sent it (DESIGN.md, attribution): the send log
through the VERP token, an ARF report's Source-IP, a Received header of the returned message
showing one of our IPs, one of our IPs named in the receiver's reply, the Reporting-MTA
mapped by [domains] mta_ips — in that order; nothing known gives no IP, counted as unknown."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from ingest.attribution import OwnIps, received_ips, sending_ip
from ingest.config import DomainsConfig, IngestConfig
from ingest.envelope import Envelope
from ingest.message import load_message
from ingest.pipeline import Pipeline
from store.models import BounceEvent, ComplaintEvent
from store.volume import SendLog

OURS = DomainsConfig(sending_ips=("192.0.2.10", "198.51.100.0/28", "2001:db8:5::1"),
                     mta_ips=("mta1.example.com=192.0.2.10",))
S3150 = ("550 5.7.1 Unfortunately, messages from [198.51.100.7] weren't sent. Please contact your "
         "Internet service provider since part of their network is on our block list (S3150).")


def dsn(diagnostic: str, *, reporting: str = "mta9.example.com", received: str = "",
        return_path: str = "bounces@example.com") -> bytes:
    return f"""Return-Path: <>
From: MAILER-DAEMON@{reporting} (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {return_path}
Date: Tue, 03 Nov 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain

This is the mail system at host {reporting}.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; {reporting}

Final-Recipient: rfc822; kim@outlook.com
Action: failed
Status: 5.7.1
Remote-MTA: dns; outlook-com.olc.protection.outlook.com
Diagnostic-Code: smtp; {diagnostic}

--B1
Content-Type: text/rfc822-headers

{received}From: News <news@send.example.com>
To: kim@outlook.com
Subject: News
Message-ID: <n1@send.example.com>

--B1--
""".encode()


def test_received_ips_reads_the_client_of_each_hop_newest_first():
    msg = load_message(b"Received: from out-7.send.example.com (out-7.send.example.com [198.51.100.7])\n"
                       b"\tby mx.example.net with ESMTPS id 1; Tue, 3 Nov 2026 10:00:00 +0000\n"
                       b"Received: from app1 ([IPv6:2001:db8:5::1]) by out-7.send.example.com; Tue, 3 Nov 2026\n"
                       b"Received: by out-7.send.example.com (Postfix, from userid 0) id 9; Tue, 3 Nov 2026\n"
                       b"Received: from x (helo [203.0.113.9]) by [192.0.2.99]; Tue, 3 Nov 2026\n"
                       b"Subject: x\n\nbody\n")
    # the "by" part names the receiver, never the client
    assert received_ips(msg) == ["198.51.100.7", "2001:db8:5::1", "203.0.113.9"]


def test_the_sources_in_order():
    own = OwnIps(OURS)
    assert sending_ip(own, send_log_ip="192.0.2.99", source_ip="192.0.2.10", diagnostic=S3150) == ("192.0.2.99", "send_log")
    assert sending_ip(own, source_ip="198.51.100.3", received=["192.0.2.10"]) == ("198.51.100.3", "source_ip")
    # a Source-IP that is not one of ours (a forwarder) does not count when ours are known
    assert sending_ip(own, source_ip="203.0.113.5", received=["192.0.2.10"]) == ("192.0.2.10", "received")
    assert sending_ip(own, received=["203.0.113.5", "2001:db8:5::1"]) == ("2001:db8:5::1", "received")
    assert sending_ip(own, received=["203.0.113.5"], diagnostic=S3150) == ("198.51.100.7", "diagnostic")
    assert sending_ip(own, diagnostic="550 host mx.example.net[203.0.113.5] said: no",
                      reporting_mta="dns; MTA1.example.com.") == ("192.0.2.10", "reporting_mta")
    assert sending_ip(own, diagnostic="550 5.1.1 user unknown", reporting_mta="dns; other.example.com") == (None, None)
    # with no IPs configured only what names the IP itself counts
    assert sending_ip(OwnIps(), source_ip="203.0.113.5", received=["192.0.2.10"], diagnostic=S3150) == (
        "203.0.113.5", "source_ip")
    assert sending_ip(OwnIps(), received=["192.0.2.10"], diagnostic=S3150) == (None, None)


@pytest.mark.parametrize("text,ip", [
    (S3150, "198.51.100.7"),
    ("421 4.7.0 [198.51.100.2      15] Our system has detected an unusual rate of unsolicited mail "
     "originating from your IP address.", "198.51.100.2"),  # Gmail
    ("554 5.7.1 Service unavailable; Client host [198.51.100.12] blocked using zen.spamhaus.org", "198.51.100.12"),
    ("421 4.7.0 [TSS04] Messages from 198.51.100.9 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "198.51.100.9"),  # Yahoo
    ("550 5.7.1 blocked (2001:db8:5::1)", "2001:db8:5::1"),
    ("550 rejected from 198.51.100.77 at 10:00:00", None),  # not in 198.51.100.0/28
])
def test_our_ip_named_in_the_receivers_reply(text, ip):
    assert OwnIps(OURS).in_text(text) == ip


def test_stored_bounces_carry_the_ip_and_its_source(store):
    pipe = Pipeline(store, IngestConfig(verp_secret="k" * 32), domains=OURS)
    received = ("Received: from out-10.send.example.com (out-10.send.example.com [192.0.2.10])\n"
                "\tby mx.outlook.com; Tue, 3 Nov 2026 09:59:00 +0000\n")
    with store.begin() as s:
        send = SendLog(campaign="nov", recipient="kim@outlook.com", recipient_domain="outlook.com",
                       sending_domain="send.example.com", sending_ip="198.51.100.4", result="bounced",
                       sent_at=datetime(2026, 11, 3, 9, 0, tzinfo=timezone.utc))
        s.add(send)
        s.flush()
        send_id = send.id
    from ingest.verp import encode_token

    cases = {
        "received": dsn("550 5.7.1 blocked", received=received),
        "diagnostic": dsn(S3150),
        "reporting_mta": dsn("550 5.7.1 blocked", reporting="mta1.example.com"),
        None: dsn("550 5.7.1 blocked"),
        "send_log": dsn(S3150, received=received,
                        return_path=encode_token(send_id, "k" * 32, "send.example.com")),
    }
    for by, raw in cases.items():
        pipe.ingest(raw, Envelope("test"))
    with store() as s:
        got = {r.attributed_by: r.sending_ip for r in s.scalars(select(BounceEvent))}
    assert got == {"received": "192.0.2.10", "diagnostic": "198.51.100.7", "reporting_mta": "192.0.2.10",
                   None: None, "send_log": "198.51.100.4"}


def test_a_complaint_takes_the_arf_source_ip(store):
    arf = b"""From: staff@hotmail.com
To: fbl@example.com
Subject: complaint about message from 198.51.100.3
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="A"

--A
Content-Type: text/plain

This is an email abuse report.

--A
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: JMRPer/1.0
Version: 1
Source-IP: 198.51.100.3
Original-Rcpt-To: kim@hotmail.com
Arrival-Date: Tue, 03 Nov 2026 10:00:00 +0000

--A
Content-Type: message/rfc822

From: News <news@send.example.com>
To: kim@hotmail.com
Subject: News
Message-ID: <n2@send.example.com>

Hi
--A--
"""
    Pipeline(store, IngestConfig(), domains=OURS).ingest(arf, Envelope("test"))
    with store() as s:
        row = s.scalars(select(ComplaintEvent)).one()
    assert (row.sending_ip, row.attributed_by) == ("198.51.100.3", "source_ip")


def test_explain_names_the_source_that_decided():
    from ingest.bounce.explain import explain

    got = explain(dsn(S3150), IngestConfig(), OURS)["events"][0]
    assert (got["sending_ip"], got["attributed_by"]) == ("198.51.100.7", "diagnostic")
    got = explain(dsn("550 5.7.1 blocked"), IngestConfig(), OURS)["events"][0]
    assert (got["sending_ip"], got["attributed_by"]) == (None, None)


def test_a_received_header_of_tabs_is_read_in_linear_time():
    """A fuzzed returned message whose Received header held 144 KB of tabs took 10 s."""
    import time

    huge = load_message(b"Received: from mx1" + b"\t" * 150_000 + b"x\nSubject: x\n\nbody\n")
    start = time.process_time()
    assert received_ips(huge) == []
    assert time.process_time() - start < 0.15  # 50 ms per 100 KB, the fuzzer's line
