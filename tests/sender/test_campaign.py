"""A campaign run against a real SMTP sink: bad rows, SMTPUTF8, template errors, re-runs,
suppressions, SMTP-time bounces and the warm-up cap."""
from dataclasses import replace
from datetime import datetime, timezone

from sqlalchemy import select

from sender.campaign import send_campaign
from store import models as m
from store.suppressions import add_suppression
from store.volume import SendLog
from tests.sender.helpers import make_template, settings, sink  # noqa: F401

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def clock():
    return NOW


def _log(store, campaign="spring"):
    with store() as s:
        return {r.recipient: r for r in s.scalars(select(SendLog).where(SendLog.campaign == campaign))}


def test_bad_rows_are_reported_by_line_and_the_good_ones_sent(tmp_path, store, sink):
    (tmp_path / "r.csv").write_text(
        "email,name\nann@example.org,Ann\nnot-an-address,X\nANN@Example.org,Ann twice\nshort@example.org\n"
        '"a b"@example.org,Quoted\nbob@exa_mple.org,Bad domain\n,Empty\nchloé@exämple.com,Chloé\n')
    report = send_campaign(store, make_template(tmp_path / "t"), tmp_path / "r.csv", settings(sink.address),
                           clock=clock)
    assert report.counts["sent"] == 2 and report.total == 8
    errors = {e.line: e.message for e in report.errors}
    assert sorted(errors) == [3, 4, 5, 6, 7, 8]
    assert "not an e-mail address" in errors[3]
    assert errors[4] == "duplicate of line 2: sent once"
    assert errors[5] == "the row has 1 fields, the header 2"
    assert "contains a space" in errors[6] and "valid domain" in errors[7] and "no address" in errors[8]
    # the non-ASCII address goes out with SMTPUTF8, its domain as IDNA
    utf8 = [r for r in sink.received if r.rcpt_tos == ["chloé@xn--exmple-cua.com"]]
    assert utf8 and "SMTPUTF8" in utf8[0].mail_options
    log = _log(store)
    assert {k: v.result for k, v in log.items()} == {"ann@example.org": "sent", "chloé@xn--exmple-cua.com": "sent"}
    row = log["ann@example.org"]
    assert (row.reply_code, row.sending_domain, row.recipient_domain) == ("250", "send.example.com", "example.org")
    assert row.message_id and row.sent_at is not None


def test_a_template_error_on_any_row_sends_nothing(tmp_path, store, sink):
    (tmp_path / "r.csv").write_text("email,name,plan\na@example.org,A,gold\nb@example.org,B,\n")
    template = make_template(tmp_path / "t", text="{{ name }} {{ plan.upper() }} {{ 1 // (plan|length) }}\n")
    report = send_campaign(store, template, tmp_path / "r.csv", settings(sink.address), clock=clock)
    assert report.aborted and "nothing was sent" in report.aborted
    assert [(e.line, "ZeroDivisionError" in e.message) for e in report.errors] == [(3, True)]
    assert sink.received == [] and _log(store) == {}


def test_a_rerun_never_sends_twice_and_retries_the_deferred(tmp_path, store, sink):
    sink.handler.rcpt_script["later@example.org"] = ["451 4.3.0 try later", "451 4.3.0 try later", "250 OK"]
    (tmp_path / "r.csv").write_text("email,name\na@example.org,A\nlater@example.org,L\n")
    args = (store, make_template(tmp_path / "t"), tmp_path / "r.csv", settings(sink.address, retries=1))
    first = send_campaign(*args, clock=clock)
    assert (first.counts["sent"], first.counts["deferred"]) == (1, 1)
    deferred = _log(store)["later@example.org"]
    assert (deferred.result, deferred.reply_code) == ("deferred", "451")
    second = send_campaign(*args, clock=clock)
    assert (second.counts["sent"], second.counts["already_sent"]) == (1, 1)
    third = send_campaign(*args, clock=clock)
    assert third.counts["already_sent"] == 2 and third.counts["sent"] == 0
    assert sorted(r.rcpt_tos[0] for r in sink.received) == ["a@example.org", "later@example.org"]
    # every attempt has its row: the deferred one stays, the retry that went out is a new one
    with store() as s:
        rows = s.execute(select(SendLog.id, SendLog.result).where(SendLog.recipient == "later@example.org")
                         .order_by(SendLog.id)).all()
    assert [tuple(r) for r in rows] == [(deferred.id, "deferred"), (rows[1].id, "sent")]


def test_a_row_left_queued_by_a_crash_is_sent_again_under_its_id(tmp_path, store, sink):
    with store.begin() as s:
        s.add(SendLog(sent_at=NOW, recipient="a@example.org", campaign="spring", result="queued"))
    (tmp_path / "r.csv").write_text("email,name\na@example.org,A\n")
    report = send_campaign(store, make_template(tmp_path / "t"), tmp_path / "r.csv", settings(sink.address),
                           clock=clock)
    assert report.counts["sent"] == 1
    [row] = _log(store).values()
    assert (row.id, row.result) == (1, "sent")
    assert row.message_id.startswith("<1.")


def test_suppressed_recipients_are_logged_and_never_sent(tmp_path, store, sink):
    with store.begin() as s:
        add_suppression(s, "gone@example.org", reason="userunknown", source="bounce", now=NOW)
        add_suppression(s, "dom@example.org", reason="abuse", source="complaint", now=NOW,
                        scope="domain:send.example.com")
        add_suppression(s, "camp@example.org", reason="unsubscribe", source="unsubscribe", now=NOW,
                        scope="campaign:spring")
        add_suppression(s, "elsewhere@example.org", reason="unsubscribe", source="unsubscribe", now=NOW,
                        scope="campaign:autumn")
    (tmp_path / "r.csv").write_text("email,name\nGone@Example.org,G\ndom@example.org,D\ncamp@example.org,C\n"
                                    "elsewhere@example.org,E\n")
    report = send_campaign(store, make_template(tmp_path / "t"), tmp_path / "r.csv", settings(sink.address),
                           clock=clock)
    assert (report.counts["suppressed"], report.counts["sent"]) == (3, 1)
    assert [r.rcpt_tos for r in sink.received] == [["elsewhere@example.org"]]
    log = _log(store)
    assert log["gone@example.org"].result == "suppressed" and "global" in log["gone@example.org"].reply
    assert log["camp@example.org"].reply == "suppressed in scope campaign:spring"


def test_an_smtp_time_5xx_becomes_a_bounce_event_tied_to_its_send(tmp_path, store, sink):
    from ingest.config import IngestConfig
    from ingest.pipeline import Pipeline
    from tests.sender.helpers import VERP_KEY

    sink.handler.rcpt_script["nobody@example.org"] = ["550 5.1.1 <nobody@example.org>: User unknown"]
    (tmp_path / "r.csv").write_text("email,name\nnobody@example.org,N\nok@example.org,O\n")
    report = send_campaign(store, make_template(tmp_path / "t"), tmp_path / "r.csv", settings(sink.address),
                           pipeline=Pipeline(store, IngestConfig(verp_secret=VERP_KEY)), clock=clock)
    assert (report.counts["bounced"], report.counts["sent"]) == (1, 1)
    row = _log(store)["nobody@example.org"]
    assert (row.result, row.reply_code) == ("bounced", "550")
    with store() as s:
        [event] = s.scalars(select(m.BounceEvent)).all()
    assert (event.recipient, event.reason, event.send_id, event.hard) == ("nobody@example.org", "userunknown",
                                                                          row.id, True)


def test_dry_run_sends_and_writes_nothing(tmp_path, store, sink):
    (tmp_path / "r.csv").write_text("email,name\na@example.org,A\nb@example.org,B\n")
    s = replace(settings(sink.address), dry_run=True)
    report = send_campaign(store, make_template(tmp_path / "t"), tmp_path / "r.csv", s, clock=clock)
    assert report.counts["sent"] == 2 and report.dry_run
    assert sink.received == [] and _log(store) == {}


def test_the_warm_up_cap_defers_the_rest(tmp_path, store, sink):
    (tmp_path / "r.csv").write_text("email,name\n" + "".join(f"u{i}@example.org,U\n" for i in range(5)))
    s = settings(sink.address, warmup_start="2026-03-01", warmup_ramp=("1", "3"))  # day 2: 3 a day
    report = send_campaign(store, make_template(tmp_path / "t"), tmp_path / "r.csv", s, clock=clock)
    assert (report.counts["sent"], report.counts["deferred"]) == (3, 2)
    assert len(sink.received) == 3
    assert all("warm-up cap reached" in r.reply for r in _log(store).values() if r.result == "deferred")


def test_a_run_that_cannot_start_says_why(tmp_path, store):
    import pytest

    (tmp_path / "r.csv").write_text("address,name\na@example.org,A\n")
    with pytest.raises(ValueError, match="no column 'email'"):
        send_campaign(store, make_template(tmp_path / "t"), tmp_path / "r.csv", settings("127.0.0.1:1"))
    with pytest.raises(ValueError, match="web.secret is empty"):
        send_campaign(store, make_template(tmp_path / "t"), tmp_path / "r.csv",
                      replace(settings("127.0.0.1:1"), unsubscribe_secret=""))
