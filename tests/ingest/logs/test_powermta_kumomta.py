"""The PowerMTA accounting CSV and KumoMTA JSON log readers, on records in their documented
shapes (examples/logs/), and what they store."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from analysis.providers import ProviderResolver, ProvidersConfig
from ingest.logs import kumomta, powermta
from ingest.logs.files import LogIngest, options_for
from ingest.logs.records import LineError, LogRecord, ReadOptions
from ingest.logs.writer import LogWriter
from store import models as m
from store.volume import VolumeImport

LOGS = Path(__file__).resolve().parents[3] / "examples" / "logs"
REF = ReadOptions(reference=datetime(2026, 12, 6, 12, tzinfo=timezone.utc))
RESOLVER = ProviderResolver(ProvidersConfig(mx_lookups=False))


def _read(module, name: str) -> list:
    return list(module.read((LOGS / name).read_text().splitlines(), REF))


def test_powermta_records_by_the_header_fields():
    records = _read(powermta, "powermta-acct.csv")
    assert [r.outcome if isinstance(r, LogRecord) else "error" for r in records] == [
        "sent", "sent", "bounced", "deferred", "error"]
    bounced = records[2]
    assert (bounced.recipient, bounced.sender, bounced.sending_ip, bounced.remote_mta, bounced.pool) == (
        "jdoe@example.net", "news@mail.example.com", "192.0.2.18", "mx.example.net", "vmta-18")
    assert (bounced.status, bounced.reply_code, bounced.campaign, bounced.mta_category) == (
        "5.1.1", "550", "december-news", "bad-mailbox")
    assert bounced.diagnostic.startswith("550 5.1.1 <jdoe@example.net>: Recipient address rejected")
    assert bounced.when == datetime(2026, 12, 6, 9, 0, 4, tzinfo=timezone.utc)
    assert isinstance(records[-1], LineError) and records[-1].lineno == 7 and "timeLogged" in records[-1].error


def test_powermta_record_before_a_header_is_an_error():
    (error,) = powermta.read(["d,2026-12-06 09:00:02-0000,a@example.com,b@example.net"], REF)
    assert isinstance(error, LineError) and "header" in error.error


def test_kumomta_records():
    records = _read(kumomta, "kumomta.jsonl")
    assert [r.outcome if isinstance(r, LogRecord) else "error" for r in records] == [
        "sent", "bounced", "deferred", "complaint", "error"]
    sent, bounced, _deferred, complaint, error = records
    assert (sent.sending_ip, sent.campaign, sent.message_id, sent.pool) == (
        "192.0.2.19", "december-news", "m1@mail.example.com", "pool-a")
    assert (bounced.status, bounced.reply_code, bounced.smtp_command, bounced.remote_mta) == (
        "5.1.1", "550", "RCPT", "mx.example.net")
    assert bounced.campaign == "december-news"  # from the queue name, as meta has none
    assert bounced.when == datetime.fromtimestamp(1765011603, timezone.utc)
    assert (complaint.feedback_type, complaint.recipient) == ("abuse", "erin@yahoo.com")
    assert error.lineno == 6 and "JSON" in error.error


def _ingest(store, mta: str, reader) -> LogIngest:
    return LogIngest(store, reader, LogWriter(mta, providers=RESOLVER.resolve_many), lambda p: options_for(p),
                     clock=lambda: datetime(2026, 12, 6, 12, tzinfo=timezone.utc))


def test_powermta_into_the_store(store):
    totals = _ingest(store, "powermta", powermta.PowerMtaReader).ingest_file(str(LOGS / "powermta-acct.csv"))
    assert (totals.sent, totals.bounced, totals.deferred, totals.errors) == (2, 1, 1, 1)
    with store() as s:
        volume = {(r.sending_ip, r.provider, r.campaign, r.origin): r.sent for r in s.scalars(select(VolumeImport))}
        event = s.scalars(select(m.BounceEvent).where(m.BounceEvent.action == "failed")).one()
        delay = s.scalars(select(m.BounceEvent).where(m.BounceEvent.action == "delayed")).one()
    assert (delay.recipient, delay.reason, delay.hard) == ("carol@example.org", "mailboxfull", False)
    assert volume == {("192.0.2.18", "other", "december-news", "log:powermta"): 1,
                      ("192.0.2.18", "google", "december-news", "log:powermta"): 1}
    assert (event.reason, event.category, event.sending_ip) == ("userunknown", "hygiene", "192.0.2.18")


def test_kumomta_into_the_store(store):
    ingest = _ingest(store, "kumomta", kumomta.KumoReader)
    totals = ingest.ingest_file(str(LOGS / "kumomta.jsonl"))
    assert (totals.sent, totals.bounced, totals.deferred, totals.complaints, totals.errors) == (1, 1, 1, 1, 1)
    again = ingest.ingest_file(str(LOGS / "kumomta.jsonl"))
    assert (again.sent, again.bounced, again.complaints, again.duplicates) == (0, 0, 0, 4)
    with store() as s:
        complaint = s.scalars(select(m.ComplaintEvent)).one()
        bounce = s.scalars(select(m.BounceEvent).where(m.BounceEvent.action == "failed")).one()
        delay = s.scalars(select(m.BounceEvent).where(m.BounceEvent.action == "delayed")).one()
        kinds = sorted(msg.kind for msg in s.scalars(select(m.InboundMessage)))
    assert (delay.recipient, delay.hard) == ("carol@example.org", False)
    assert (complaint.feedback_type, complaint.recipient, complaint.campaign) == (
        "abuse", "erin@yahoo.com", "december-news")
    assert (bounce.reason, bounce.smtp_command, bounce.sending_ip) == ("userunknown", "RCPT", "192.0.2.19")
    assert kinds == ["bounce", "complaint"]


def test_powermta_remote_bounce_and_feedback_loop_records():
    """`rb` (a non-delivery report PowerMTA's bounce processor took in) reads like `b`; `f` (a
    feedback-loop report it took in) is a complaint with its type and source IP; `rs` is skipped."""
    records = _read(powermta, "powermta-remote.csv")
    assert [r.outcome for r in records] == ["bounced", "complaint"]
    bounced, complaint = records
    assert (bounced.recipient, bounced.status, bounced.reply_code, bounced.mta_category, bounced.message_id) == (
        "old.user@example.net", "5.1.1", "550", "bad-mailbox", "m7@mail.example.com")
    assert (complaint.recipient, complaint.feedback_type, complaint.sending_ip, complaint.campaign) == (
        "frank@aol.com", "abuse", "192.0.2.18", "december-news")


def test_powermta_remote_records_into_the_store(store):
    totals = _ingest(store, "powermta", powermta.PowerMtaReader).ingest_file(str(LOGS / "powermta-remote.csv"))
    assert (totals.bounced, totals.complaints, totals.sent) == (1, 1, 0)
    with store() as s:
        bounce = s.scalars(select(m.BounceEvent)).one()
        complaint = s.scalars(select(m.ComplaintEvent)).one()
    assert (bounce.reason, bounce.hard, bounce.orig_message_id) == ("userunknown", True, "m7@mail.example.com")
    assert (complaint.recipient, complaint.feedback_type, complaint.source_ip) == ("frank@aol.com", "abuse",
                                                                                    "192.0.2.18")


def test_kumomta_bounce_class_decides_when_the_words_say_little():
    """KumoMTA's bounce_classification is the sending MTA's category: it names the reason when
    the receiver's words match no rule (rules.toml [mta_category]); Uncategorized says nothing."""
    def line(cls: str, content: str) -> str:
        return ('{"type":"Bounce","sender":"news@mail.example.com","recipient":"pat@example.org",'
                '"timestamp":1765011603,"response":{"code":552,"enhanced_code":{"class":5,"subject":2,"detail":0},'
                f'"content":"{content}","command":"RCPT TO:<pat@example.org>"}},"bounce_classification":"{cls}"}}')

    (quota,) = kumomta.read([line("QuotaIssues", "sorry, no")], REF)
    (plain,) = kumomta.read([line("Uncategorized", "sorry, no")], REF)
    assert (quota.mta_category, plain.mta_category) == ("kumomta:quotaissues", None)
    from ingest.bounce.classify import classify

    def reason(r: LogRecord) -> tuple[str, str]:
        c = classify({"recipient": r.recipient, "action": "failed", "status": r.status, "reply_code": r.reply_code,
                      "diagnostic": r.diagnostic, "mta_category": r.mta_category})
        return c["reason"], c["rule"]

    assert reason(quota) == ("mailboxfull", "mta_category kumomta:quotaissues")
    assert reason(plain)[0] != "mailboxfull"
