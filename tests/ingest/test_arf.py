"""Complaint reports: RFC 5965 ARF, Microsoft JMRP (new and legacy), Yahoo CFL, SES, Apple."""
from __future__ import annotations

import base64
import email
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.parse import parse_bytes
from ingest.parsers.arf import iso_date, looks_like_complaint, parse_fields, read_feedback, redacted

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_reports"
CORPUS = Path(os.environ.get("POSTWATCH_CORPUS", ROOT.parent / "shared" / "corpus"))


def sample(rel: str):
    return parse_bytes((SAMPLES / rel).read_bytes())


def corpus(rel: str):
    path = CORPUS / rel
    if not path.exists():
        pytest.skip(f"corpus file {rel} not present")
    return parse_bytes(path.read_bytes())


ARF = """\
From: fbl@feedback.example.org
To: abuse-reports@example.com
Subject: report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b"

--b
Content-Type: text/plain

This is an email abuse report.

--b
Content-Type: message/feedback-report
{cte}
{fields}
--b
Content-Type: message/rfc822

From: News <news@example.com>
To: {to}
X-Original-To: {xto}
Subject: Offers
Message-ID: <m1@mail.example.com>
Feedback-ID: jan:news:example:pw

hi
--b--
"""
FIELDS = """\
Feedback-Type: abuse
User-Agent: SomeFBL/1.0
Version: 1
Original-Mail-From: <bounces@mail.example.com>
Original-Rcpt-To: {rcpt}
Arrival-Date: Tue, 09 Jan 2024 10:14:55 -0500
Source-IP: [192.0.2.17]
Reported-Domain: Example.com
Reporting-MTA: dns; fbl.example.org
Authentication-Results: fbl.example.org;
  spf=pass smtp.mailfrom=mail.example.com
"""


def arf(rcpt="<kim@example.net>", to="kim@example.net", xto="kim@example.net", cte=""):
    fields = FIELDS.format(rcpt=rcpt)
    if cte == "base64":
        fields = base64.encodebytes(fields.replace("\n", "\r\n").encode()).decode()
    return ARF.format(cte=f"Content-Transfer-Encoding: {cte}\n" if cte else "", fields=fields,
                      to=to, xto=xto).encode()


def test_rfc5965_fields():
    r = parse_bytes(arf())
    assert r.kind == "complaint" and r.error is None
    (ev,) = r.events
    assert ev == {"recipient": "kim@example.net", "feedback_type": "abuse", "source_ip": "192.0.2.17",
                  "reported_domain": "example.com", "user_agent": "SomeFBL/1.0", "version": "1",
                  "original_mail_from": "bounces@mail.example.com", "original_rcpt_to": "kim@example.net",
                  "arrival_date": "2024-01-09T15:14:55Z",
                  "authentication_results": "fbl.example.org; spf=pass smtp.mailfrom=mail.example.com",
                  "reporting_mta": "fbl.example.org"}
    assert r.attribution["message_id"] == "<m1@mail.example.com>"
    assert r.attribution["feedback_id"] == "jan:news:example:pw"
    assert r.attribution["from_domain"] == "example.com"


def test_base64_feedback_part_is_decoded():
    r = parse_bytes(arf(cte="base64"))
    assert r.kind == "complaint"
    assert r.events[0]["source_ip"] == "192.0.2.17"
    assert r.events[0]["recipient"] == "kim@example.net"


def test_crlf_and_cr_only_give_the_same_answer():
    raw = arf()
    lf = parse_bytes(raw)
    assert parse_bytes(raw.replace(b"\n", b"\r\n")).events == lf.events
    assert parse_bytes(raw.replace(b"\n", b"\r")).events == lf.events


@pytest.mark.parametrize("rcpt", ["redacted@example.net", "xxxxxxx@example.net", "<>", "kim@"])
def test_redacted_recipient_falls_back_to_the_returned_message(rcpt):
    r = parse_bytes(arf(rcpt=rcpt, to="undisclosed-recipients:;", xto="kim@example.net"))
    assert r.events[0]["recipient"] == "kim@example.net"


def test_missing_recipient_everywhere_gives_none():
    raw = arf(rcpt="", to="undisclosed-recipients:;", xto="")
    r = parse_bytes(raw)
    assert r.kind == "complaint" and r.events[0]["recipient"] is None


def test_redacted():
    assert redacted("redacted@example.net") and redacted("kim@") and redacted(None)
    assert not redacted("kim@example.net")


def test_iso_date():
    assert iso_date("Thu, 29 Apr 2013 23:45:50 PST") == "2013-04-30T07:45:50Z"
    assert iso_date("Tue, 9 Jan 2024 10:14:55 +0000") == "2024-01-09T10:14:55Z"
    assert iso_date("not a date") == "not a date"
    assert iso_date(None) is None


def test_parse_fields_folds_and_repeats():
    f = parse_fields("A: 1\nB: x\n  y\nA: 2\nnot a field\n")
    assert f == {"a": ["1", "2"], "b": ["x y"]}


def test_feedback_type_of_and_auth_failure_is_a_dmarc_failure():
    raw = arf().replace(b"Feedback-Type: abuse", b"Feedback-Type: auth-failure")
    assert read_feedback(email.message_from_bytes(raw)).feedback_type == "auth-failure"
    r = parse_bytes(raw)
    assert r.kind == "dmarc_failure"
    assert r.report["feedback_type"] == "auth-failure"
    assert r.report["source_ip"] == "192.0.2.17"
    assert r.report["reported_domain"] == "example.com"


def test_samples_yahoo_cfl():
    r = sample("complaints/yahoo-cfl.eml")
    assert r.kind == "complaint"
    (ev,) = r.events
    assert (ev["recipient"], ev["feedback_type"], ev["source_ip"], ev["user_agent"]) == \
        ("erin@example.net", "abuse", "192.0.2.17", "Yahoo!-Mail-Feedback/2.0")
    assert ev["arrival_date"] == "2024-01-09T10:14:55Z"  # from Received-Date, the older name


def test_samples_jmrp_takes_recipient_from_hotmail_header():
    r = sample("complaints/microsoft-jmrp.eml")
    (ev,) = r.events
    assert ev["recipient"] == "frank@example.org"
    assert ev["original_rcpt_to"] == "redacted@hotmail.com"
    assert r.attribution["message_id"] == "<20240109101452.s1t2u3@mail.example.com>"


def test_samples_legacy_jmrp_without_feedback_part():
    msg = email.message_from_bytes((SAMPLES / "complaints/microsoft-jmrp-legacy.eml").read_bytes())
    assert looks_like_complaint(msg)
    r = sample("complaints/microsoft-jmrp-legacy.eml")
    assert r.kind == "complaint"
    (ev,) = r.events
    assert (ev["recipient"], ev["source_ip"], ev["feedback_type"]) == ("grace@example.net", "192.0.2.19", "abuse")
    assert ev["user_agent"] == "Microsoft Junk Mail Reporting Program"


def test_samples_generic_arf_one_event_per_recipient():
    r = sample("complaints/generic-arf.eml")
    assert [e["recipient"] for e in r.events] == ["heidi@example.org", "ivan@example.org"]
    assert {e["reporting_mta"] for e in r.events} == {"mail.feedback.example.org"}


def test_apple_unsubscribe_is_an_opt_out():
    raw = b"""From: someone@example.net
To: unsubscribe+abc@mail.example.com
Subject: unsubscribe
Date: Thu, 2 May 2024 17:48:55 +0000
Auto-Submitted: auto-replied
X-Apple-Unsubscribe: true
Content-Type: text/plain

Apple Mail sent this email to unsubscribe from the message.
"""
    r = parse_bytes(raw)
    assert r.kind == "complaint"
    assert r.events[0]["feedback_type"] == "opt-out"
    assert r.events[0]["recipient"] == "someone@example.net"


def test_ses_complaint_notification():
    raw = b"""From: SES <no-reply@sns.amazonaws.com>
To: ops@example.com
Subject: AWS Notification Message
x-amz-sns-message-id: 1
Content-Type: text/plain

{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"lee@example.net"}],
"timestamp":"2024-01-09T10:20:00.000Z","userAgent":"Yahoo","complaintFeedbackType":"abuse"},
"mail":{"source":"news@example.com","sourceIp":"192.0.2.17","commonHeaders":{"from":["news@example.com"],
"messageId":"<m2@mail.example.com>","subject":"Offers"}}}
"""
    r = parse_bytes(raw)
    assert r.kind == "complaint"
    (ev,) = r.events
    assert (ev["recipient"], ev["feedback_type"], ev["source_ip"]) == ("lee@example.net", "abuse", "192.0.2.17")
    assert r.attribution["message_id"] == "<m2@mail.example.com>"


def test_empty_feedback_part_is_an_error():
    r = sample("broken/complaint-empty-feedback.eml")
    assert r.kind == "complaint" and "empty" in r.error


def test_corpus_multiple_recipients():
    r = corpus("sisimai/arf-17.eml")
    assert [e["recipient"] for e in r.events] == ["kijitora@example.com", "sabatora@example.net"]


def test_corpus_netease_base64_failure_report():
    r = corpus("parsedmarc/failure___Netease_DMARC_Failure_Report_Rent_Reminder.eml")
    assert r.kind == "dmarc_failure" and r.report["source_ip"] == "167.89.69.24"


def test_complaints_do_not_import_parsedmarc():
    code = ("import sys; from ingest.parse import parse_bytes; "
            f"r = parse_bytes(open({str(SAMPLES / 'complaints/yahoo-cfl.eml')!r}, 'rb').read()); "
            "assert r.kind == 'complaint'; print('parsedmarc' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_reported_and_from_domains_are_lower_case():
    apple = b"""From: someone@example.net
To: <unsubscribe+abc@Mail.Example.COM>
Subject: unsubscribe
X-Apple-Unsubscribe: true
Content-Type: text/plain

Apple Mail sent this email to unsubscribe from the message.
"""
    assert parse_bytes(apple).events[0]["reported_domain"] == "mail.example.com"
    ses = b"""From: SES <no-reply@sns.amazonaws.com>
To: ops@example.com
Subject: AWS Notification Message
x-amz-sns-message-id: 1
Content-Type: text/plain

{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"lee@example.net"}],
"complaintFeedbackType":"abuse"},
"mail":{"source":"News@Example.COM","commonHeaders":{"from":["Shop <News@Example.COM>"]}}}
"""
    r = parse_bytes(ses)
    assert r.events[0]["reported_domain"] == "example.com" and r.attribution["from_domain"] == "example.com"
