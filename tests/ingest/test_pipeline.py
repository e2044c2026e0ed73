import zlib

from sqlalchemy import func, select

from ingest.config import IngestConfig
from ingest.envelope import Envelope
from ingest.pipeline import Pipeline
from store import models as m
from tests.ingest.messages import dmarc_xml, gz, postfix_dsn, tls_json, vacation_reply


def count(store, model):
    with store() as s:
        return s.execute(select(func.count()).select_from(model)).scalar()


def test_a_bounce_becomes_one_message_and_its_events(store, pipeline):
    raw = postfix_dsn(recipients=[
        ("gone@example.net", "5.1.1", "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown"),
        ("full@example.org", "4.2.2", "452 4.2.2 Mailbox full")])
    out = pipeline.ingest(raw, Envelope("file", "t.eml", "", ("bounces@example.com",)))
    assert (out.kind, out.status, out.events, out.duplicate) == ("bounce", "parsed", 2, False)
    with store() as s:
        msg = s.get(m.InboundMessage, out.message_id)
        assert zlib.decompress(msg.raw_zlib) == raw and msg.size == len(raw)
        assert msg.envelope_to == ["bounces@example.com"] and msg.origin == "t.eml"
        events = s.scalars(select(m.BounceEvent).order_by(m.BounceEvent.recipient)).all()
    assert [(e.recipient, e.recipient_domain, e.status) for e in events] == [
        ("full@example.org", "example.org", "4.2.2"), ("gone@example.net", "example.net", "5.1.1")]
    gone = events[1]
    assert gone.from_domain == "send.example.com"
    assert gone.orig_message_id == "<m1.campaign7@send.example.com>"
    assert gone.feedback_id == "nov26:acme:newsletter:esp1"
    assert gone.list_id == "<news.send.example.com>"
    assert gone.reply_code == "550" and gone.remote_mta == "mx.example.net"
    assert gone.occurred_at.year == 2026


def test_a_verdict_the_codes_disagree_with_is_stored_soft_with_its_conflict(store, pipeline):
    raw = postfix_dsn(recipients=[
        ("gone@example.net", "5.1.1", "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown"),
        ("later@example.org", "4.1.1", "450 4.1.1 <later@example.org>: Recipient address rejected: User unknown "
                                       "in virtual mailbox table")])
    pipeline.ingest(raw, Envelope("file", mail_from="", rcpt_tos=("bounces@example.com",)))
    with store() as s:
        rows = s.execute(select(m.BounceEvent.recipient, m.BounceEvent.reason, m.BounceEvent.hard,
                                m.BounceEvent.conflict).order_by(m.BounceEvent.recipient)).all()
    gone, later = rows
    assert (gone.reason, gone.hard, gone.conflict) == ("userunknown", True, None)
    assert (later.reason, later.hard) == ("userunknown", False)
    assert "4.1.1 is temporary" in later.conflict


def test_the_same_bytes_twice_store_one_message_and_one_set_of_events(store, pipeline):
    raw = postfix_dsn()
    first = pipeline.ingest(raw, Envelope("smtp"))
    again = pipeline.ingest(raw, Envelope("imap"))
    assert again.duplicate and again.message_id == first.message_id
    assert count(store, m.InboundMessage) == 1 and count(store, m.BounceEvent) == 1


def test_duplicates_inside_one_batch_are_stored_once(store, pipeline):
    raw = postfix_dsn()
    outs = list(pipeline.ingest_many([(raw, Envelope("file", "a")), (raw, Envelope("file", "b")),
                                      (vacation_reply(), Envelope("file", "c"))], batch_size=10))
    assert [o.duplicate for o in outs] == [False, True, False]
    assert outs[0].message_id == outs[1].message_id
    assert count(store, m.InboundMessage) == 2 and count(store, m.BounceEvent) == 1


def test_line_endings_do_not_change_the_events(store, pipeline):
    lf = pipeline.ingest(postfix_dsn(newline="\n"), Envelope("file"))
    crlf = pipeline.ingest(postfix_dsn(newline="\r\n"), Envelope("file"))
    cr = pipeline.ingest(postfix_dsn(newline="\r"), Envelope("file"))
    assert len({lf.message_id, crlf.message_id, cr.message_id}) == 3
    with store() as s:
        rows = s.execute(select(m.BounceEvent.message_id, m.BounceEvent.recipient, m.BounceEvent.status,
                                m.BounceEvent.diagnostic, m.BounceEvent.reason)).all()
    assert len({r[1:] for r in rows}) == 1 and len(rows) == 3


def test_vacation_reply_is_ignored_not_counted(store, pipeline):
    out = pipeline.ingest(vacation_reply(), Envelope("file"))
    assert (out.kind, out.status, out.events) == ("auto_reply", "ignored", 0)
    assert count(store, m.BounceEvent) == 0


def test_not_a_report_is_quarantined_with_its_reason_and_kept(store, pipeline):
    raw = b"From: a@example.com\nTo: b@example.com\nSubject: hello\n\njust a note\n"
    out = pipeline.ingest(raw, Envelope("file"))
    assert out.status == "quarantined" and out.kind == "unknown" and "not a feedback message" in out.error
    with store() as s:
        q = s.scalars(select(m.Quarantine)).one()
        assert q.message_id == out.message_id and q.reason == out.error
        assert zlib.decompress(q.message.raw_zlib) == raw


def test_oversized_and_empty_inputs_are_quarantined(store):
    pipeline = Pipeline(store, IngestConfig(max_message_bytes=1000))
    big = pipeline.ingest(b"Subject: x\n\n" + b"a" * 5000, Envelope("file"))
    empty = pipeline.ingest(b"   \n", Envelope("file"))
    assert big.status == "quarantined" and "ingest.max_message_bytes" in big.error
    assert empty.status == "quarantined" and empty.error == "empty input"
    assert count(store, m.Quarantine) == 2


def test_dmarc_aggregate_is_stored_with_records_and_a_resent_copy_only_once(store, pipeline):
    xml = dmarc_xml(rows=[("192.0.2.10", 12, "pass", "pass"), ("198.51.100.7", 3, "fail", "fail")])
    first = pipeline.ingest(xml, Envelope("file"))
    resent = pipeline.ingest(gz(xml), Envelope("file"))  # other bytes, same report
    assert (first.kind, first.status, first.events) == ("dmarc_aggregate", "parsed", 1)
    assert resent.status == "ignored" and "duplicate DMARC aggregate report" in resent.error
    with store() as s:
        rep = s.scalars(select(m.DmarcAggregateReport)).one()
        assert (rep.org_name, rep.report_id, rep.domain, rep.record_count, rep.message_count) == (
            "google.com", "rpt-1", "send.example.com", 2, 15)
        recs = sorted((r.source_ip, r.count, r.dmarc_pass) for r in rep.records)
    assert recs == [("192.0.2.10", 12, True), ("198.51.100.7", 3, False)]


def test_tls_report_is_stored_with_policies_and_failures(store, pipeline):
    out = pipeline.ingest(gz(tls_json()), Envelope("file"))
    assert (out.kind, out.status) == ("smtp_tls", "parsed")
    again = pipeline.ingest(tls_json(), Envelope("file"))
    assert again.status == "ignored"
    with store() as s:
        rep = s.scalars(select(m.TlsReport)).one()
        assert (rep.organization_name, rep.successful_sessions, rep.failed_sessions) == ("Google Inc.", 40, 3)
        failure = rep.policies[0].failures[0]
    assert (failure.result_type, failure.receiving_mx_hostname, failure.failed_sessions) == (
        "certificate-expired", "mx.send.example.com", 3)


def test_parallel_ingest_stores_everything_once_in_input_order(store, pipeline):
    """Worker processes parse while the main process writes; nothing is lost or doubled."""
    copies = [postfix_dsn(message_id=f"<m{i}@send.example.com>") for i in range(150)]
    items = [(raw, Envelope("file", f"m{i}")) for i, raw in enumerate(copies + copies[:20])]
    outs = list(pipeline.ingest_many(items, batch_size=40, workers=2))
    assert [o.origin for o in outs] == [f"m{i}" for i in range(170)]
    assert sum(o.duplicate for o in outs) == 20
    assert all(o.message_id == outs[i].message_id for i, o in enumerate(outs[150:]))
    assert count(store, m.InboundMessage) == 150 and count(store, m.BounceEvent) == 150


def test_reprocess_releases_what_now_parses_and_keeps_the_rest(store):
    strict = Pipeline(store, IngestConfig(max_message_bytes=500))
    bounce = strict.ingest(postfix_dsn(), Envelope("file"))
    junk = strict.ingest(b"Subject: hello\n\nnot feedback\n", Envelope("file"))
    assert bounce.status == "quarantined" and count(store, m.BounceEvent) == 0
    outs = {o.message_id: o for o in Pipeline(store).reprocess_quarantined()}
    assert outs[bounce.message_id].status == "parsed" and outs[bounce.message_id].events == 1
    assert outs[junk.message_id].status == "quarantined"
    with store() as s:
        msg = s.get(m.InboundMessage, bounce.message_id)
        assert (msg.kind, msg.status, msg.error) == ("bounce", "parsed", None)
        q = s.scalars(select(m.Quarantine).where(m.Quarantine.message_id == bounce.message_id)).one()
        assert q.released_at is not None
        assert s.scalars(select(m.BounceEvent)).one().message_id == bounce.message_id
    assert list(Pipeline(store).reprocess_quarantined(kind="bounce")) == []  # nothing left of that kind
