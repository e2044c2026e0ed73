"""Hard verdicts that hold on mail nobody tuned a rule to: each test is a message written here in
one MTA's documented format, for one class of mistake a classifier makes on unseen bounces.

The expected answers come from what the codes and the words mean (RFC 3463, RFC 5321, the
MTA's own messages), never from what the classifier printed.
"""
from __future__ import annotations

import pytest

from ingest.bounce.classify import classify
from ingest.config import IngestConfig
from ingest.parse import parse_bytes
from tests.ingest.messages import postfix_dsn

CONFIG = IngestConfig()


def _one(raw: bytes) -> dict:
    result = parse_bytes(raw, CONFIG)
    assert result.kind == "bounce" and result.error is None, result.error
    assert len(result.events) == 1, result.events
    return result.events[0]


# RFC 3463 subject.detail codes, alone (nothing in the words to go by), read by their meaning;
# the class decides hardness: only a 5 can say an address is bad for good.
CODES = [
    ("5.1.1", "userunknown", True), ("4.1.1", "userunknown", False),
    ("5.1.2", "hostunknown", True), ("4.1.2", "hostunknown", False),
    ("5.1.6", "hasmoved", True), ("4.1.6", "hasmoved", False),
    ("5.2.1", "suspend", False), ("5.2.2", "mailboxfull", False), ("4.2.2", "mailboxfull", False),
    ("5.2.3", "exceedlimit", False), ("5.3.4", "mesgtoobig", False), ("5.3.1", "systemfull", False),
    ("4.4.7", "expired", False), ("5.4.7", "expired", False), ("4.4.1", "expired", False),
    ("5.4.4", "hostunknown", True), ("5.7.1", "securityerror", False), ("5.7.26", "authfailure", False),
    ("5.7.25", "requireptr", False), ("5.5.2", "syntaxerror", False), ("5.6.0", "contenterror", False),
    ("5.1.10", "notaccept", True),
]


@pytest.mark.parametrize("status,reason,hard", CODES, ids=[c[0] for c in CODES])
def test_rfc3463_detail_codes_by_their_meaning(status, reason, hard):
    out = classify({"status": status, "action": "failed" if status[0] == "5" else "delayed", "diagnostic": None})
    assert out["reason"] == reason, out["rule"]
    assert out["hard_bounce"] is hard


@pytest.mark.parametrize("reason_words,code", [
    ("User unknown in virtual mailbox table", "450 4.1.1"),
    ("Host or domain name not found", "451 4.1.2"),
    ("User unknown", "421 4.7.0"),
])
def test_a_temporary_code_is_never_hard(reason_words, code):
    out = classify({"status": code.split()[1], "reply_code": code.split()[0], "action": "failed",
                    "smtp_command": "RCPT", "diagnostic": f"{code} <kim@example.org>: Recipient address rejected: {reason_words}"})
    assert out["hard_bounce"] is False
    assert "temporary" in out["conflict"]


def test_moved_address_is_hasmoved_not_userunknown():
    # Postfix relaying a receiver's 5.1.6 (RFC 3463: "Destination mailbox has moved, no forwarding address").
    raw = postfix_dsn(recipients=(("moved@example.net", "5.1.6",
                                   "550 5.1.6 <moved@example.net>: Recipient address rejected: user unknown here, "
                                   "this address has changed"),))
    ev = _one(raw)
    assert (ev["reason"], ev["status"], ev["hard_bounce"]) == ("hasmoved", "5.1.6", True)


def test_the_text_status_is_preferred_to_a_generic_5_1_1_field():
    # A relay summarises with 5.1.1; the receiver's own reply says 5.1.6 (Sisimai's Status.Prefer).
    raw = postfix_dsn(recipients=(("moved@example.net", "5.1.1",
                                   "550 5.1.6 Recipient no longer on server; new address unknown"),))
    ev = _one(raw)
    assert ev["status"] == "5.1.6"
    assert ev["reason"] == "hasmoved"


def test_quota_bounce_that_also_says_user_is_mailboxfull_and_soft():
    # Outlook.com's wording for an unknown mailbox, with the code for a full one: the code is precise.
    raw = postfix_dsn(recipients=(("kim@hotmail.com", "5.2.2",
                                   "552 5.2.2 Requested action not taken: mailbox unavailable (user storage exceeded)"),))
    ev = _one(raw)
    assert (ev["reason"], ev["hard_bounce"]) == ("mailboxfull", False)
    assert "5.2.2" in ev["conflict"]


def test_a_4xx_unknown_user_from_postfix_stays_soft():
    # Postfix's unknown_local_recipient_reject_code = 450 (a common "soft bounce" setting).
    raw = postfix_dsn(recipients=(("kim@example.net", "4.1.1",
                                   "450 4.1.1 <kim@example.net>: Recipient address rejected: User unknown in local "
                                   "recipient table"),))
    ev = _one(raw)
    assert ev["reason"] == "userunknown"
    assert ev["hard_bounce"] is False


DOMINO = b"""From: Postmaster <postmaster@notes.example.com>
To: news@send.example.com
Subject: DELIVERY FAILURE: User Kim Lee (kim.lee@example.com) not listed in Domino Directory
Date: Tue, 03 Nov 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="D1"

--D1
Content-Type: text/plain; charset=us-ascii

Your message

  Subject: November news

was not delivered to:

  kim.lee@example.com

because:

  User Kim Lee (kim.lee@example.com) not listed in Domino Directory

--D1
Content-Type: message/delivery-status

Reporting-MTA: dns;notes.example.com

Final-Recipient: rfc822;kim.lee@example.com
Action: failed
Status: 5.0.0
Diagnostic-Code: X-Notes; User Kim Lee (kim.lee@example.com) not listed in Domino Directory

--D1--
"""


def test_domino_directory_miss_is_userunknown():
    ev = _one(DOMINO)
    assert ev["recipient"] == "kim.lee@example.com"
    assert (ev["reason"], ev["hard_bounce"]) == ("userunknown", True)


POWERMTA = b"""From: postmaster@pmta.send.example.com
To: bounces@send.example.com
Subject: Delivery report
Date: Tue, 03 Nov 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="P1"

--P1
Content-Type: text/plain

Hello, this is the mail server on pmta.send.example.com.

I am sending you this message to inform you on the delivery status of a
message you previously sent.  Immediately below you will find a list of
the affected recipients;  also attached is a Delivery Status Notification
(DSN) report in standard format, as well as the headers of the original
message.

  <lee@example.org>  delivery failed; will not continue trying

--P1
Content-Type: message/delivery-status

Reporting-MTA: dns;pmta.send.example.com
X-PowerMTA-VirtualMTA: vmta1
Received-From-MTA: dns;app.send.example.com (192.0.2.5)
Arrival-Date: Tue, 3 Nov 2026 09:58:00 +0000

Final-Recipient: rfc822;lee@example.org
Action: failed
Status: 5.0.0 (undefined status)
Remote-MTA: dns;mx.example.org (198.51.100.7)
Diagnostic-Code: smtp;550 Requested action not taken: mailbox unavailable
X-PowerMTA-BounceCategory: bad-mailbox

--P1--
"""


def test_powermta_bad_mailbox_is_userunknown():
    ev = _one(POWERMTA)
    assert (ev["reason"], ev["hard_bounce"]) == ("userunknown", True)
    assert ev["rule"] == "mta_category bad-mailbox"


def test_powermta_category_does_not_override_a_temporary_code():
    ev = _one(POWERMTA.replace(b"Status: 5.0.0 (undefined status)", b"Status: 4.0.0")
              .replace(b"smtp;550 ", b"smtp;450 "))
    assert ev["reason"] == "userunknown"
    assert ev["hard_bounce"] is False


JAMES = b"""From: mailer-daemon@james.example.com
To: news@send.example.com
Subject: [BOUNCE]
Date: Tue, 03 Nov 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="J1"

--J1
Content-Type: text/plain; charset=us-ascii

Error: Invalid user address

Error message below:
550 - Requested action not taken: no such user here

Message details:
  Subject: November news
  Sent date: Tue Nov 03 09:59:00 GMT 2026
  MAIL FROM: news@send.example.com
  RCPT TO: kim@example.net
  From: news@send.example.com
  Size (in bytes): 1200
  Number of lines: 20

--J1--
"""


def test_apache_james_summary_names_the_recipient_not_the_command():
    # The "RCPT TO:" line is James's summary of the message, not the command that failed, so
    # nothing says the refusal came at RCPT: a soft verdict, not a hard one.
    ev = _one(JAMES)
    assert ev["recipient"] == "kim@example.net"
    assert ev["diagnostic"] == "550 - Requested action not taken: no such user here"
    assert ev["hard_bounce"] is False


def test_verizon_gateway_unknown_subscriber_is_userunknown():
    ev = _one(JAMES.replace(b"kim@example.net", b"5551234567@vtext.com"))
    assert (ev["reason"], ev["hard_bounce"]) == ("userunknown", True)


@pytest.mark.parametrize("diag,reason", [
    ("Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)", "networkerror"),  # qmail-remote
    ("all relevant MX records point to non-existent hosts", "hostunknown"),  # Exim
    ("550 5.7.1 <kim@example.net>... Relaying denied", "norelaying"),  # Sendmail
    ("554 5.3.0 unknown mailer error 1", "mailererror"),  # Sendmail
    ("Temporary failure in MX lookup", "networkerror"),  # OpenSMTPD
    ("This domain's DNS violates RFC 1035.", "systemerror"),  # Courier
    ("Unable to contact LDAP server (#4.4.3)", "systemerror"),  # qmail-ldap
    ("delivery to pipe forbidden", "systemerror"),  # Exim
])
def test_the_mtas_own_words_name_the_cause(diag, reason):
    out = classify({"status": None, "action": "failed", "diagnostic": diag})
    assert out["reason"] == reason, out["rule"]
    assert out["hard_bounce"] is (reason == "hostunknown")


def test_a_quoted_4_7_0_beats_a_relays_5_5_0():
    raw = postfix_dsn(recipients=(("kim@example.net", "5.5.0",
                                   "421 4.7.0 Try again later, closing connection. (EHLO)"),))
    ev = _one(raw)
    assert ev["status"] == "4.7.0"
    assert ev["hard_bounce"] is False


def _dsn_with(status_blocks: str) -> bytes:
    return ("From: MAILER-DAEMON@mta1.example.com\nTo: news@send.example.com\nSubject: Successful Mail Delivery Report\n"
            "MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n"
            "--B\nContent-Type: text/plain\n\nThis is the mail system at host mta1.example.com.\n\n"
            "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mta1.example.com\n\n"
            f"{status_blocks}\n--B--\n").encode()


def test_every_delivered_mailbox_behind_one_address_is_an_event():
    # An alias that expanded to two mailboxes: two deliveries, one Original-Recipient.
    raw = _dsn_with("Final-Recipient: rfc822; a@example.net\nOriginal-Recipient: rfc822; team@example.net\n"
                    "Action: delivered\nStatus: 2.0.0\n\n"
                    "Final-Recipient: rfc822; b@example.net\nOriginal-Recipient: rfc822; team@example.net\n"
                    "Action: delivered\nStatus: 2.0.0\n")
    result = parse_bytes(raw, CONFIG)
    assert [e["reason"] for e in result.events] == ["delivered", "delivered"]
    assert {e.get("final_recipient") for e in result.events} == {"a@example.net", "b@example.net"}


def test_recipient_named_only_in_the_quoted_dialogue():
    raw = b"""From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.com>
To: news@send.example.com
Subject: Returned mail: see transcript for details
Date: Tue, 03 Nov 2026 10:00:00 +0000

The original message was received at Tue, 3 Nov 2026 09:59:00 GMT

   ----- Transcript of session follows -----
>>> MAIL From:<news@send.example.com>
<<< 250 2.1.0 OK
>>> RCPT To:<kim@example.net>
<<< 550 5.1.1 Mailbox does not exist
"""
    ev = _one(raw)
    assert ev["recipient"] == "kim@example.net"
    assert ev["reason"] == "userunknown"


def test_recipient_named_only_in_the_subject():
    raw = b"""From: postmaster@gateway.example.com
To: news@send.example.com
Subject: Undeliverable: message to kim@example.net
Date: Tue, 03 Nov 2026 10:00:00 +0000

Delivery has failed. The recipient's mailbox is full.
"""
    ev = _one(raw)
    assert ev["recipient"] == "kim@example.net"
    assert ev["reason"] == "mailboxfull"


def test_mms_gateway_summary_to_line():
    raw = b"""From: sysadmin@mms.vzwpix.com
To: news@send.example.com
Subject: Returned mail
Date: Tue, 03 Nov 2026 10:00:00 +0000

Message could not be delivered to mobile.
Error: No valid recipients for this MM
To: 5551234567@vzwpix.com
From: news@send.example.com
Subject: November news
"""
    ev = _one(raw)
    assert ev["recipient"] == "5551234567@vzwpix.com"
    assert (ev["reason"], ev["hard_bounce"]) == ("userunknown", True)


def test_sendmail_pipelined_rcpt_failure_reported_at_data():
    # Sendmail with PIPELINING: every RCPT TO failed, so DATA got "503 Need RCPT"; the 550 5.1.1
    # answered the RCPT, and its status is the one that says why.
    raw = b"""From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.com>
To: news@send.example.com
Subject: Returned mail: see transcript for details
Auto-Submitted: auto-generated (failure)

The original message was received at Tue, 3 Nov 2026 10:00:00 +0000
from app.send.example.com [192.0.2.5]

   ----- The following addresses had permanent fatal errors -----
<kim@example.net>
    (reason: 550 5.1.1 <kim@example.net>... No such user)

   ----- Transcript of session follows -----
... while talking to mx.example.net.:
>>> DATA
<<< 550 5.1.1 <kim@example.net>... No such user
550 5.1.1 <kim@example.net>... User unknown
<<< 503 5.5.1 No recipients
"""
    ev = _one(raw)
    assert (ev["status"], ev["reason"], ev["hard_bounce"]) == ("5.1.1", "userunknown", True)


@pytest.mark.parametrize("remote,reason", [
    ("Remote host said: 552 5.2.2 Mailbox quota exceeded", "mailboxfull"),
    ("Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)", "expired"),
])
def test_qmail_queue_expiry_names_the_remote_cause_first(remote, reason):
    raw = f"""From: MAILER-DAEMON@qmail.example.com
To: news@send.example.com
Subject: failure notice

Hi. This is the qmail-send program at qmail.example.com.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<kim@example.net>:
{remote}
I'm not going to try again; this message has been in the queue too long.

--- Below this line is a copy of the message.
""".encode()
    ev = _one(raw)
    assert ev["reason"] == reason
    assert ev["hard_bounce"] is False


def test_sendmail_transcript_reply_belongs_to_the_recipient_line_after_it():
    # Sendmail's transcript prints the receiver's reply ("<<<") and the per-host error line
    # ("NNN host (mailer)... text") before the per-recipient line they explain; a recipient's
    # account ends where the next transcript line starts.
    raw = b"""From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.com>
To: news@send.example.com
Subject: Returned mail: see transcript for details
Date: Tue, 03 Nov 2026 10:00:00 +0000

   ----- Transcript of session follows -----
While talking to mx.example.net:
>>> MAIL From:<news@send.example.com>
<<< 554 <news@send.example.com>... Access denied: your server [192.0.2.9] is listed as an open relay
554 <kim@example.net>... Service unavailable
550 nowhere.example (smtp)... 550 Host unknown
554 <lee@nowhere.example>... 550 Host unknown (Authoritative answer from name server)
While talking to mx.example.org:
>>> RCPT To:<max@example.org>
<<< 550 5.1.1 <max@example.org>... User unknown
550 5.1.1 <max@example.org>... User unknown

   ----- Unsent message follows -----
From: news@send.example.com
To: kim@example.net
Subject: News

Hello
"""
    result = parse_bytes(raw, CONFIG)
    got = {e["recipient"]: e for e in result.events}
    assert set(got) == {"kim@example.net", "lee@nowhere.example", "max@example.org"}
    kim = got["kim@example.net"]
    assert "open relay" in kim["diagnostic"] and "Host unknown" not in kim["diagnostic"]
    assert kim["hard_bounce"] is False and kim["reason"] != "hostunknown"
    assert kim["remote_mta"] == "mx.example.net"
    assert (got["lee@nowhere.example"]["reason"], got["lee@nowhere.example"]["hard_bounce"]) == ("hostunknown", True)
    assert "open relay" not in got["lee@nowhere.example"]["diagnostic"]
    assert (got["max@example.org"]["reason"], got["max@example.org"]["hard_bounce"]) == ("userunknown", True)
    assert got["max@example.org"]["remote_mta"] == "mx.example.org"
