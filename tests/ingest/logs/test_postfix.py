"""The Postfix log reader, on lines in Postfix's documented format."""
from __future__ import annotations

from datetime import datetime, timezone

from ingest.logs.postfix import read
from ingest.logs.records import LineError, LogRecord, ReadOptions

REF = ReadOptions(reference=datetime(2026, 12, 6, 12, tzinfo=timezone.utc), sending_ip="192.0.2.17")

MESSAGE = """\
Dec  6 09:00:01 mail postfix/cleanup[2102]: 4A1B2C3D4E: info: header X-Campaign: december-news from app1.example.com[192.0.2.40]; from=<news@example.com> to=<jdoe@example.net> proto=ESMTP helo=<app1.example.com>
Dec  6 09:00:01 mail postfix/cleanup[2102]: 4A1B2C3D4E: message-id=<m1@example.com>
Dec  6 09:00:01 mail postfix/qmgr[1900]: 4A1B2C3D4E: from=<news@example.com>, size=4120, nrcpt=3 (queue active)
Dec  6 09:00:02 mail postfix/smtp[2103]: 4A1B2C3D4E: to=<jdoe@example.net>, relay=mx.example.net[198.51.100.25]:25, delay=1.1, delays=0.05/0.01/0.6/0.44, dsn=5.1.1, status=bounced (host mx.example.net[198.51.100.25] said: 550 5.1.1 <jdoe@example.net>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command))
Dec  6 09:00:02 mail postfix/smtp[2104]: 4A1B2C3D4E: to=<alice@example.org>, relay=mx1.example.org[203.0.113.5]:25, delay=1.2, delays=0.05/0.01/0.5/0.64, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 7F1E2D3C4B)
Dec  6 09:00:03 mail postfix/smtp[2105]: 4A1B2C3D4E: to=<carol@example.org>, relay=mx1.example.org[203.0.113.5]:25, delay=2.3, delays=0.05/0.01/1.2/1, dsn=4.2.2, status=deferred (host mx1.example.org[203.0.113.5] said: 452 4.2.2 <carol@example.org>: Mailbox full (in reply to RCPT TO command))
Dec  6 09:00:03 mail postfix/bounce[2106]: 4A1B2C3D4E: sender non-delivery notification: 5B2C3D4E5F
"""


def _records(text: str, options: ReadOptions = REF) -> list:
    return list(read(text.splitlines(), options))


def test_results_are_joined_with_the_message_by_queue_id():
    bounced, sent, deferred, dsn = _records(MESSAGE)
    assert isinstance(bounced, LogRecord) and bounced.outcome == "bounced"
    assert (bounced.recipient, bounced.sender, bounced.message_id, bounced.campaign) == (
        "jdoe@example.net", "news@example.com", "m1@example.com", "december-news")
    assert (bounced.status, bounced.reply_code, bounced.smtp_command, bounced.remote_mta, bounced.sending_ip) == (
        "5.1.1", "550", "RCPT", "mx.example.net", "192.0.2.17")
    assert bounced.diagnostic.startswith("550 5.1.1 <jdoe@example.net>: Recipient address rejected")
    assert bounced.when == datetime(2026, 12, 6, 9, 0, 2, tzinfo=timezone.utc)
    assert (sent.outcome, sent.recipient, sent.reply_code) == ("sent", "alice@example.org", None)
    assert (deferred.outcome, deferred.status, deferred.reply_code) == ("deferred", "4.2.2", "452")
    assert (dsn.outcome, dsn.queue_id) == ("dsn", "4A1B2C3D4E")


def test_rfc3339_timestamps_and_long_queue_ids():
    text = ("2026-12-06T09:00:01.123456+01:00 mail postfix/qmgr[1900]: 4Lr1Ym0Bxlz9sq6: from=<a@example.com>, size=1, nrcpt=1 (queue active)\n"
            "2026-12-06T09:00:02.5+01:00 mail postfix-out/smtp[2]: 4Lr1Ym0Bxlz9sq6: to=<b@example.net>, relay=mx.example.net[198.51.100.2]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 OK)\n")
    (sent,) = _records(text)
    assert sent.sender == "a@example.com"
    assert sent.when == datetime(2026, 12, 6, 8, 0, 2, 500000, tzinfo=timezone.utc)


def test_the_year_is_inferred_and_wraps_at_new_year():
    text = ("Dec 31 23:59:59 mail postfix/smtp[1]: 0A1B2C3D4E: to=<a@example.net>, relay=x[198.51.100.1]:25, dsn=2.0.0, status=sent (250 OK)\n"
            "Jan  1 00:00:01 mail postfix/smtp[1]: 0A1B2C3D4F: to=<b@example.net>, relay=x[198.51.100.1]:25, dsn=2.0.0, status=sent (250 OK)\n")
    # the file was last written on 1 January 2027: its December is 2026's
    first, second = _records(text, ReadOptions(reference=datetime(2027, 1, 1, 0, 5, tzinfo=timezone.utc)))
    assert first.when.year == 2026 and second.when.year == 2027
    # a file last written in June 2027 that starts on 31 December: that December is 2026's
    only_dec = _records(text.splitlines()[0], ReadOptions(reference=datetime(2027, 6, 1, tzinfo=timezone.utc)))
    assert only_dec[0].when == datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc)


def test_a_zone_for_syslog_timestamps():
    text = "Jul  6 09:00:00 mail postfix/smtp[1]: 0A1B2C3D4E: to=<a@example.net>, relay=x[198.51.100.1]:25, dsn=2.0.0, status=sent (250 OK)"
    (sent,) = _records(text, ReadOptions(reference=datetime(2026, 7, 7, tzinfo=timezone.utc), zone="Europe/Paris"))
    assert sent.when.astimezone(timezone.utc) == datetime(2026, 7, 6, 7, 0, tzinfo=timezone.utc)


def test_expired_messages_expire_each_recipient_still_deferred():
    text = ("Dec  1 09:00:00 mail postfix/qmgr[1]: 0A1B2C3D4E: from=<news@example.com>, size=1, nrcpt=2 (queue active)\n"
            "Dec  1 09:00:01 mail postfix/smtp[2]: 0A1B2C3D4E: to=<a@example.net>, relay=none, delay=1, delays=0/0/1/0, dsn=4.4.1, status=deferred (connect to mx.example.net[198.51.100.9]:25: Connection timed out)\n"
            "Dec  1 09:00:01 mail postfix/smtp[2]: 0A1B2C3D4E: to=<b@example.net>, relay=mx.example.net[198.51.100.9]:25, delay=1, delays=0/0/1/0, dsn=2.0.0, status=sent (250 OK)\n"
            "Dec  6 09:00:00 mail postfix/qmgr[1]: 0A1B2C3D4E: from=<news@example.com>, status=expired, returned to sender\n")
    records = _records(text)
    assert [r.outcome for r in records] == ["deferred", "sent", "expired"]
    expired = records[-1]
    assert (expired.recipient, expired.status, expired.sender) == ("a@example.net", "4.4.1", "news@example.com")
    assert "Connection timed out" in expired.diagnostic


def test_other_lines_are_skipped_and_broken_results_reported():
    text = ("Dec  6 09:00:00 mail sshd[1]: Accepted publickey for root\n"
            "Dec  6 09:00:00 mail postfix/smtpd[1]: connect from app1.example.com[192.0.2.40]\n"
            "Dec  6 09:00:00 mail postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[198.51.100.1]: 554 5.7.1 Relay access denied\n"
            "Dec  6 09:00:00 mail postfix/smtp[1]: warning: TLS library problem\n"
            "Dec  6 09:00:00 mail postfix/smtp[1]: 0A1B2C3D4E: to=<a@example.net, status=sent (250 OK)\n"
            "Feb 30 09:00:00 mail postfix/smtp[1]: 0A1B2C3D4E: to=<a@example.net>, status=sent (250 OK)\n"
            "garbage \xff\x00 line\n")
    records = _records(text)
    assert [type(r) for r in records] == [LineError, LineError]
    assert records[0].lineno == 5 and "to=<...>" in records[0].error
    assert records[1].lineno == 6 and "not a date" in records[1].error


def test_local_delivery_failures_keep_their_text():
    text = 'Dec  6 09:00:00 mail postfix/local[9]: 0A1B2C3D4E: to=<nobody@mail.example.com>, relay=local, delay=0.1, delays=0/0/0/0, dsn=5.1.1, status=bounced (unknown user: "nobody")'
    (r,) = _records(text)
    assert (r.outcome, r.status, r.remote_mta, r.diagnostic) == ("bounced", "5.1.1", None, 'unknown user: "nobody"')


def test_daemons_passed_over_are_told_by_the_program_not_the_text():
    """smtpd's lines are passed over unread; a result line whose text names smtpd is still read,
    and so is a line of a Postfix instance with a name of its own (postfix-out/smtp)."""
    lines = [
        "Dec  6 09:00:00 mx postfix/smtpd[10]: 0A1B2C3D4E: client=app[192.0.2.40]",
        "Dec  6 09:00:01 mx postfix-out/qmgr[11]: 0A1B2C3D4E: from=<news@mail.example.com>, size=9, nrcpt=1",
        "Dec  6 09:00:02 mx postfix-out/smtp[12]: 0A1B2C3D4E: to=<ann@example.org>, relay=mx.example.org[192.0.2.25]:25, "
        "dsn=5.7.1, status=bounced (host mx.example.org[192.0.2.25] said: 550 5.7.1 rejected by "
        "postfix/smtpd[99]: policy (in reply to RCPT TO command))",
    ]
    (record,) = read(lines, REF)
    assert (record.outcome, record.recipient, record.sender, record.status) == (
        "bounced", "ann@example.org", "news@mail.example.com", "5.7.1")
    assert "postfix/smtpd[99]: policy" in record.diagnostic
