"""How many complaint events a complaint report gives, and with which recipient and type.

The rule: one event per report; several only when the report names several distinct
Original-Rcpt-To addresses. The recipient comes from Original-Rcpt-To, else the original
message's To (when it names exactly one address), else Removal-Recipient and the delivery
headers of the original. Every message here is written for its test, in the shape the
named format documents (RFC 5965, RFC 6591, the provider feedback loops).
"""
from __future__ import annotations

import base64
import email

from ingest.detect import detect
from ingest.envelope import Envelope
from ingest.parse import parse_bytes

HEAD = """\
From: Feedback Loop <fbl@feedback.example.org>
To: abuse-reports@send.example.com
Subject: Abuse report
Date: Mon, 04 Mar 2024 08:00:00 +0000
Message-ID: <report-1@feedback.example.org>
MIME-Version: 1.0
"""
TEXT_PART = """\
Content-Type: text/plain; charset=us-ascii

This is an email abuse report for an email message received from IP 192.0.2.40
on Mon, 04 Mar 2024 07:55:00 +0000.
"""
ORIGINAL = """\
Return-Path: <bounces@send.example.com>
From: Shop News <news@send.example.com>
To: {to}
Subject: Spring sale
Date: Mon, 04 Mar 2024 07:50:00 +0000
Message-ID: <sale-1@send.example.com>

Everything must go.
"""


def fields(rcpts=("<pat@example.net>",), ftype="abuse", extra=""):
    lines = [f"Feedback-Type: {ftype}"] if ftype is not None else []
    lines += ["User-Agent: ExampleFBL/1.0", "Version: 1",
              "Original-Mail-From: <bounces@send.example.com>"]
    lines += [f"Original-Rcpt-To: {r}" for r in rcpts]
    lines += ["Arrival-Date: Mon, 04 Mar 2024 07:55:00 +0000", "Source-IP: 192.0.2.40",
              "Reported-Domain: send.example.com"]
    return "\n".join(lines) + "\n" + extra


def report(feedback: str, *, to="pat@example.net", original: str | None = None, head=HEAD,
           parts=("text", "feedback", "original"), original_type="message/rfc822", boundary="R",
           content_type='multipart/report; report-type=feedback-report; boundary="{b}"') -> bytes:
    bodies = {
        "text": TEXT_PART,
        "feedback": f"Content-Type: message/feedback-report\n\n{feedback}",
        "original": f"Content-Type: {original_type}\n\n{original or ORIGINAL.format(to=to)}",
    }
    out = f"{head}Content-Type: {content_type.format(b=boundary)}\n\n"
    for name in parts:
        out += f"--{boundary}\n{bodies[name]}\n"
    return (out + f"--{boundary}--\n").encode()


def events_of(raw: bytes, **kw):
    r = parse_bytes(raw, **kw)
    assert r.kind == "complaint", (r.kind, r.error)
    assert r.error is None
    return r.events


def who(events):
    return [(e["recipient"], e["feedback_type"]) for e in events]


# --- RFC 5965: the recipient named once, twice, or by several fields -----------------

def test_rfc5965_one_recipient_named_in_the_report_and_the_original():
    (ev,) = events_of(report(fields()))
    assert (ev["recipient"], ev["original_rcpt_to"], ev["feedback_type"]) == \
        ("pat@example.net", "pat@example.net", "abuse")
    assert (ev["source_ip"], ev["reported_domain"], ev["user_agent"]) == \
        ("192.0.2.40", "send.example.com", "ExampleFBL/1.0")
    assert ev["arrival_date"] == "2024-03-04T07:55:00Z"


def test_the_same_original_rcpt_to_in_other_case_brackets_and_type_prefix_is_one_event():
    rcpts = ("<pat@example.net>", "Pat@Example.NET", "rfc822; <PAT@example.net>")
    events = events_of(report(fields(rcpts)))
    assert who(events) == [("pat@example.net", "abuse")]


def test_two_distinct_original_rcpt_to_give_two_events_not_more():
    raw = report(fields(("<pat@example.net>", "<sam@example.org>", "<Sam@example.org>")),
                 to="pat@example.net, sam@example.org")
    events = events_of(raw)
    assert who(events) == [("pat@example.net", "abuse"), ("sam@example.org", "abuse")]
    assert [e["original_rcpt_to"] for e in events] == ["pat@example.net", "sam@example.org"]


def test_original_rcpt_to_differing_from_the_original_to_wins_and_counts_once():
    # an alias: the original was addressed to the list, delivered to the subscriber
    (ev,) = events_of(report(fields(("<pat@example.net>",)), to="members@lists.example.net"))
    assert ev["recipient"] == "pat@example.net"


def test_redacted_address_beside_original_rcpt_to_adds_no_event():
    raw = report(fields(extra="Redacted-Address: pat@\n"))
    assert who(events_of(raw)) == [("pat@example.net", "abuse")]


def test_redacted_address_alone_takes_the_recipient_from_the_original_to():
    # the AOL shape: the report hides the local part, the original's To still names it
    raw = report(fields(rcpts=(), extra="Redacted-Address: pat@\n"), to="<pat@example.net>")
    (ev,) = events_of(raw)
    assert (ev["recipient"], ev["original_rcpt_to"]) == ("pat@example.net", None)


def test_an_empty_original_rcpt_to_beside_a_named_one_adds_no_event():
    events = events_of(report(fields(("<pat@example.net>", "<>"))))
    assert who(events) == [("pat@example.net", "abuse")]


def test_hidden_original_rcpt_tos_are_one_event_with_the_recipient_of_the_original():
    raw = report(fields(("redacted@example.net", "<redacted@example.net>", "xxxxxxxx@example.net")))
    (ev,) = events_of(raw)
    assert ev["recipient"] == "pat@example.net"


def test_without_original_rcpt_to_the_original_to_names_the_recipient_only_when_alone():
    (one,) = events_of(report(fields(rcpts=()), to="Pat <pat@example.net>"))
    assert one["recipient"] == "pat@example.net"
    (many,) = events_of(report(fields(rcpts=()), to="pat@example.net, sam@example.org"))
    assert many["recipient"] is None


def test_without_original_rcpt_to_a_delivery_header_of_the_original_names_the_recipient():
    original = ("Delivered-To: sam@example.org\nFrom: news@send.example.com\n"
                "To: pat@example.net, sam@example.org\nSubject: hi\n\nhi\n")
    (ev,) = events_of(report(fields(rcpts=()), original=original))
    assert ev["recipient"] == "sam@example.org"


def test_the_envelope_of_the_report_is_not_a_recipient():
    raw = report(fields(rcpts=()), to="undisclosed-recipients:;")
    (ev,) = events_of(raw, envelope=Envelope("smtp", mail_from="fbl@feedback.example.org",
                                             rcpt_tos=("abuse-reports@send.example.com",)))
    assert ev["recipient"] is None


def test_original_rcpt_to_fields_in_the_human_readable_part_are_not_read():
    raw = report(fields()).replace(
        b"on Mon, 04 Mar 2024 07:55:00 +0000.\n",
        b"on Mon, 04 Mar 2024 07:55:00 +0000.\nOriginal-Rcpt-To: <sam@example.org>\n"
        b"Feedback-Type: fraud\n")
    assert who(events_of(raw)) == [("pat@example.net", "abuse")]


# --- several report parts, reports inside reports --------------------------------------

def test_two_feedback_parts_in_one_message_are_one_report():
    raw = report(fields(), parts=("text", "feedback", "feedback", "original"))
    assert who(events_of(raw)) == [("pat@example.net", "abuse")]


def test_an_empty_first_feedback_part_gives_way_to_the_filled_one():
    raw = report(fields(), parts=("text", "feedback", "original")).replace(
        b"--R\nContent-Type: message/feedback-report\n",
        b"--R\nContent-Type: message/feedback-report\n\n\n--R\nContent-Type: message/feedback-report\n", 1)
    assert who(events_of(raw)) == [("pat@example.net", "abuse")]


NESTED = report(fields(("<other@example.com>",), ftype="fraud"), boundary="IN").decode()


def test_an_original_that_is_itself_a_report_is_not_read_as_the_report():
    # the complained-about message is a report; attached before the feedback part it is
    # met first in a walk of the whole tree
    raw = report(fields(), original=NESTED, parts=("text", "original", "feedback"))
    assert who(events_of(raw)) == [("pat@example.net", "abuse")]


def test_a_legacy_fbl_mail_whose_original_is_a_report_is_one_legacy_complaint():
    head = HEAD.replace("fbl@feedback.example.org", "staff@hotmail.com").replace(
        "Subject: Abuse report", "Subject: complaint about message from 192.0.2.40")
    raw = report("", head=head, original=NESTED, parts=("text", "original"),
                 content_type='multipart/mixed; boundary="{b}"')
    events = events_of(raw)
    assert len(events) == 1
    assert events[0]["feedback_type"] == "abuse" and events[0]["recipient"] != "other@example.com"
    assert events[0]["source_ip"] == "192.0.2.40"


def test_a_report_forwarded_as_an_attachment_is_read_once():
    head = HEAD.replace("Subject: Abuse report", "Subject: Fwd: Abuse report")
    raw = report("", head=head, original=NESTED, parts=("text", "original"),
                 content_type='multipart/mixed; boundary="{b}"')
    assert who(events_of(raw)) == [("other@example.com", "fraud")]


def test_a_bounced_report_is_a_bounce_not_a_complaint():
    dsn = f"""From: MAILER-DAEMON@mx.example.org
To: abuse-reports@send.example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="D"

--D
Content-Type: text/plain

Your message could not be delivered.

--D
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; gone@example.org
Action: failed
Status: 5.1.1

--D
Content-Type: message/rfc822

{NESTED}
--D--
"""
    assert detect(email.message_from_string(dsn)).kind == "bounce"


# --- the feedback type -----------------------------------------------------------------

def test_feedback_types_of_rfc6650_are_lower_cased():
    for written, stored in (("Abuse", "abuse"), ("FRAUD", "fraud"), ("Virus", "virus"),
                            ("other", "other"), ("Not-Spam", "not-spam"), ('"abuse";', "abuse")):
        assert who(events_of(report(fields(ftype=written)))) == [("pat@example.net", stored)]


def test_field_names_in_any_case_are_read():
    feedback = fields(ftype="fraud").replace("Feedback-Type", "FEEDBACK-TYPE").replace(
        "Original-Rcpt-To", "original-rcpt-to")
    assert who(events_of(report(feedback))) == [("pat@example.net", "fraud")]


def test_a_report_without_feedback_type_is_abuse():
    # Yahoo-style reports that leave the required field out
    head = HEAD.replace("fbl@feedback.example.org", "feedback@arf.mail.yahoo.com")
    raw = report(fields(ftype=None).replace("ExampleFBL/1.0", "Yahoo!-Mail-Feedback/1.0"), head=head)
    (ev,) = events_of(raw)
    assert (ev["recipient"], ev["feedback_type"], ev["user_agent"]) == \
        ("pat@example.net", "abuse", "Yahoo!-Mail-Feedback/1.0")


def test_rfc6591_auth_failure_is_one_dmarc_failure_report():
    feedback = fields(ftype="auth-failure", extra="Auth-Failure: dmarc\nDelivery-Result: reject\n")
    upper = report(feedback.replace("auth-failure", "Auth-Failure"))
    assert detect(email.message_from_bytes(upper)).kind == "dmarc_failure"
    r = parse_bytes(report(feedback))
    assert r.kind == "dmarc_failure" and r.events == []
    assert (r.report["feedback_type"], r.report["auth_failure"], r.report["original_rcpt_to"]) == \
        ("auth-failure", "dmarc", "pat@example.net")


def test_base64_feedback_part():
    encoded = base64.encodebytes(fields(ftype="virus").encode()).decode()
    raw = report(encoded).replace(b"Content-Type: message/feedback-report\n",
                                  b"Content-Type: message/feedback-report\n"
                                  b"Content-Transfer-Encoding: base64\n")
    assert who(events_of(raw)) == [("pat@example.net", "virus")]


def test_opt_out_report_names_the_recipient_in_removal_recipient():
    # the draft ARF opt-out report: the original's headers only, To hidden
    feedback = ("Feedback-Type: opt-out\nUser-Agent: ExampleARF/0.1\nVersion: 0.1\n"
                "Removal-Recipient: pat@example.net\n")
    original = "From: news@send.example.com\nTo: <Undisclosed Recipients>\nSubject: hi\n"
    raw = report(feedback, original=original, original_type="text/rfc822-headers")
    (ev,) = events_of(raw)
    assert (ev["recipient"], ev["feedback_type"], ev["original_rcpt_to"]) == \
        ("pat@example.net", "opt-out", None)


# --- provider shapes -------------------------------------------------------------------

def test_microsoft_jmrp_arf_takes_the_recipient_from_its_own_header():
    head = HEAD.replace("fbl@feedback.example.org", "staff@hotmail.com")
    feedback = ("Feedback-Type: abuse\nUser-Agent: Hotmail FBL\nVersion: 0.1\n"
                "Original-Rcpt-To: redacted@hotmail.com\nSource-IP: 192.0.2.40\n")
    original = ("x-hmxmroriginalrecipient: <Pat@Outlook.example>\nFrom: news@send.example.com\n"
                "To: list@send.example.com\nSubject: hi\nMessage-ID: <jm-1@send.example.com>\n\nhi\n")
    (ev,) = events_of(report(feedback, head=head, original=original))
    assert (ev["recipient"], ev["feedback_type"], ev["original_rcpt_to"]) == \
        ("pat@outlook.example", "abuse", "redacted@hotmail.com")


def test_microsoft_jmrp_arf_without_feedback_type_is_abuse_from_the_junk_mail_program():
    feedback = "Version: 0.1\nSource-IP: 192.0.2.40\n"
    original = "X-HmXmrOriginalRecipient: pat@outlook.example\nFrom: news@send.example.com\n\nhi\n"
    (ev,) = events_of(report(feedback, original=original))
    assert (ev["recipient"], ev["feedback_type"], ev["user_agent"]) == \
        ("pat@outlook.example", "abuse", "Microsoft Junk Mail Reporting Program")


def test_microsoft_jmrp_legacy_multipart_mixed():
    raw = b"""From: staff@hotmail.com
To: fbl@send.example.com
Subject: complaint about message from 192.0.2.40
Date: Mon, 04 Mar 2024 08:00:00 -0800
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="J"

--J
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.40.

--J
Content-Type: message/rfc822
Content-Disposition: attachment

X-HmXmrOriginalRecipient: <pat@outlook.example>
From: news@send.example.com
To: pat@outlook.example, sam@outlook.example
Subject: hi
Message-ID: <jm-2@send.example.com>

hi
--J--
"""
    (ev,) = events_of(raw)
    assert (ev["recipient"], ev["feedback_type"], ev["source_ip"], ev["user_agent"]) == \
        ("pat@outlook.example", "abuse", "192.0.2.40", "Microsoft Junk Mail Reporting Program")
    assert ev["arrival_date"] == "2024-03-04T16:00:00Z"


def test_return_path_style_report_with_the_recipient_hidden_everywhere():
    # the shape of the Validity-run FBLs (Comcast and others): no Original-Rcpt-To, the
    # original's To blanked, an Abuse-Type beside the Feedback-Type
    head = HEAD.replace("fbl@feedback.example.org", "feedbackloop@comcastfbl.example.net")
    feedback = ("User-Agent: ReturnPathFBL/2.0\nAbuse-Type: complaint\nFeedback-Type: abuse\n"
                "Version: 1\nSource-IP: 192.0.2.40\nOriginal-Mail-From: news@send.example.com\n")
    raw = report(feedback, head=head, to='"undisclosed"')
    (ev,) = events_of(raw)
    assert (ev["recipient"], ev["feedback_type"], ev["user_agent"]) == (None, "abuse", "ReturnPathFBL/2.0")


def test_mailru_style_report_with_headers_only():
    head = HEAD.replace("fbl@feedback.example.org", "fbl@corp.mail.example")
    original = ("From: news@send.example.com\nTo: pat@mail.example\nSubject: hi\n"
                "X-Mailru-Msgtype: spring-sale\nMessage-ID: <ru-1@send.example.com>\n")
    feedback = ("Feedback-Type: abuse\nUser-Agent: Mail.Ru FBL\nVersion: 1\n"
                "Original-Rcpt-To: <pat@mail.example>\nArrival-Date: Mon, 04 Mar 2024 10:55:00 +0300\n")
    raw = report(feedback, head=head, original=original, original_type="text/rfc822-headers")
    (ev,) = events_of(raw)
    assert (ev["recipient"], ev["feedback_type"], ev["arrival_date"]) == \
        ("pat@mail.example", "abuse", "2024-03-04T07:55:00Z")


def test_yandex_style_report_with_a_folded_base64_feedback_part():
    head = HEAD.replace("fbl@feedback.example.org", "fbl@yandex.example")
    text = ("Feedback-Type: abuse\r\nUser-Agent: Yandex FBL\r\nVersion: 1\r\n"
            "Original-Rcpt-To:\r\n <Pat@yandex.example>\r\nSource-IP: 192.0.2.40\r\n")
    encoded = base64.encodebytes(text.encode()).decode()
    raw = report(encoded, head=head, to="pat@yandex.example").replace(
        b"Content-Type: message/feedback-report\n",
        b"Content-Type: message/feedback-report\nContent-Transfer-Encoding: base64\n")
    assert who(events_of(raw)) == [("pat@yandex.example", "abuse")]


def test_spamtrap_report_lists_each_trap_once():
    # abuse-desk reports ("an autogenerated email abuse complaint regarding your network")
    # name every trap that got the message
    raw = report(fields(("trap1@traps.example", "trap2@traps.example", "<TRAP1@traps.example>")),
                 to="trap1@traps.example")
    assert who(events_of(raw)) == [("trap1@traps.example", "abuse"), ("trap2@traps.example", "abuse")]


def test_multipart_report_without_report_type_is_read_by_its_feedback_part():
    raw = report(fields(ftype="other"), content_type='multipart/report; boundary="{b}"')
    assert who(events_of(raw)) == [("pat@example.net", "other")]


def test_ses_notification_naming_one_recipient_twice_is_one_event():
    raw = b"""From: SES <no-reply@sns.amazonaws.com>
To: ops@send.example.com
Subject: AWS Notification Message
x-amz-sns-message-id: 7
Content-Type: text/plain

{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"pat@example.net"},
{"emailAddress":"Pat@Example.net"}],"timestamp":"2024-03-04T08:00:00.000Z","complaintFeedbackType":"abuse"},
"mail":{"source":"news@send.example.com","sourceIp":"192.0.2.40","commonHeaders":{}}}
"""
    assert who(events_of(raw)) == [("pat@example.net", "abuse")]
