"""Small realistic messages built in code, for tests that need exact control of one detail."""
from __future__ import annotations

import gzip
import json


def postfix_dsn(recipients=(("gone@example.net", "5.1.1", "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown"),),
                message_id="<m1.campaign7@send.example.com>", newline="\n") -> bytes:
    status_blocks = "".join(
        f"Final-Recipient: rfc822; {r}\nOriginal-Recipient: rfc822;{r}\nAction: failed\nStatus: {s}\n"
        f"Remote-MTA: dns; mx.example.net\nDiagnostic-Code: smtp; {d}\n\n" for r, s, d in recipients)
    text = f"""Return-Path: <>
From: MAILER-DAEMON@mta1.example.com (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: bounces@example.com
Date: Tue, 03 Nov 2026 10:00:00 +0000
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"
Message-Id: <20261103100000.1@mta1.example.com>

--B1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mta1.example.com.

--B1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mta1.example.com
Arrival-Date: Tue, 03 Nov 2026 09:59:58 +0000

{status_blocks}--B1
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: News <news@send.example.com>
To: someone@example.net
Subject: November news
Message-ID: {message_id}
List-Id: <news.send.example.com>
Feedback-ID: nov26:acme:newsletter:esp1

--B1--
"""
    return text.replace("\n", newline).encode()


def vacation_reply() -> bytes:
    return b"""From: Someone <someone@example.net>
To: news@send.example.com
Subject: Out of office: November news
Auto-Submitted: auto-replied
Date: Tue, 03 Nov 2026 10:00:00 +0000
Message-ID: <ooo1@example.net>

I am away until Monday.
"""


def dmarc_xml(report_id="rpt-1", org="google.com", domain="send.example.com", rows=((("192.0.2.10", 12, "pass", "pass")),)) -> bytes:
    records = "".join(f"""
  <record>
    <row><source_ip>{ip}</source_ip><count>{n}</count>
      <policy_evaluated><disposition>none</disposition><dkim>{dk}</dkim><spf>{sp}</spf></policy_evaluated></row>
    <identifiers><header_from>{domain}</header_from></identifiers>
    <auth_results><dkim><domain>{domain}</domain><result>{dk}</result><selector>s1</selector></dkim>
      <spf><domain>{domain}</domain><result>{sp}</result></spf></auth_results>
  </record>""" for ip, n, dk, sp in rows)
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata><org_name>{org}</org_name><email>noreply-dmarc-support@{org}</email>
    <report_id>{report_id}</report_id><date_range><begin>1793664000</begin><end>1793750399</end></date_range>
  </report_metadata>
  <policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>{records}
</feedback>
""".encode()


def tls_json(report_id="2026-11-03T00:00:00Z_send.example.com", failed=3) -> bytes:
    return json.dumps({
        "organization-name": "Google Inc.",
        "date-range": {"start-datetime": "2026-11-03T00:00:00Z", "end-datetime": "2026-11-03T23:59:59Z"},
        "contact-info": "smtp-tls-reporting@google.com", "report-id": report_id,
        "policies": [{"policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: enforce"],
                                 "policy-domain": "send.example.com", "mx-host": ["mx.send.example.com"]},
                      "summary": {"total-successful-session-count": 40, "total-failure-session-count": failed},
                      "failure-details": [{"result-type": "certificate-expired", "sending-mta-ip": "203.0.113.5",
                                           "receiving-mx-hostname": "mx.send.example.com",
                                           "failed-session-count": failed}]}],
    }).encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)
