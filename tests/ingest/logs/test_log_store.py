"""Log records into the store: volume under its origin, bounce events through the classifier,
each result line counted once (the file read twice, a rotated copy), the rollups count it."""
from __future__ import annotations

import gzip
import os
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import func, select

from analysis.providers import ProviderResolver, ProvidersConfig
from analysis.rollups import update
from ingest.config import IngestConfig
from ingest.logs.files import LogIngest, options_for
from ingest.logs.postfix import PostfixReader
from ingest.logs.writer import LogTotals, LogWriter
from ingest.verp import encode_token
from store import models as m
from store.rollups import Rollup
from store.volume import SendLog, VolumeImport

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "logs" / "postfix.log"
NOW = datetime(2026, 12, 6, 12, tzinfo=timezone.utc)
RESOLVER = ProviderResolver(ProvidersConfig(mx_lookups=False))


def _ingest(store, config: IngestConfig | None = None, **kw) -> LogIngest:
    writer = LogWriter("postfix", config, providers=RESOLVER.resolve_many)
    return LogIngest(store, PostfixReader, writer, lambda p: options_for(p, sending_ip="192.0.2.17"),
                     clock=lambda: NOW, **kw)


def _volume(store) -> dict:
    with store() as s:
        return {(r.day, r.sending_domain, r.sending_ip, r.provider, r.campaign, r.origin): r.sent
                for r in s.scalars(select(VolumeImport))}


def _counts(store) -> tuple[int, int]:
    with store() as s:
        return (s.scalar(select(func.coalesce(func.sum(VolumeImport.sent), 0))),
                s.scalar(select(func.count()).select_from(m.BounceEvent)))


def test_sent_lines_are_volume_and_failed_lines_bounce_events(store):
    totals = _ingest(store).ingest_file(str(EXAMPLE))
    assert (totals.lines, totals.sent, totals.bounced, totals.deferred, totals.errors) == (22, 2, 2, 1, 0)
    assert totals.notifications == 2  # the bounce daemon's line, and the delivery of that notification
    assert totals.reasons == {"userunknown": 1, "blocked": 1}
    day = date(2026, 12, 6)
    assert _volume(store) == {
        (day, "mail.example.com", "192.0.2.17", "other", "december-news", "log:postfix"): 1,
        (day, "mail.example.com", "192.0.2.17", "google", "", "log:postfix"): 1}
    with store() as s:
        events = {e.recipient: e for e in s.scalars(select(m.BounceEvent))}
        message = s.scalars(select(m.InboundMessage)).one()
        assert (message.source, message.kind, message.status) == ("log:postfix", "bounce", "parsed")
        assert message.origin.endswith("postfix.log:7-21")
    jdoe = events["jdoe@example.net"]
    assert (jdoe.reason, jdoe.category, jdoe.hard, jdoe.status, jdoe.reply_code, jdoe.smtp_command) == (
        "userunknown", "hygiene", True, "5.1.1", "550", "RCPT")
    assert (jdoe.campaign, jdoe.sending_ip, jdoe.attributed_by, jdoe.from_domain, jdoe.orig_message_id) == (
        "december-news", "192.0.2.17", "mta_log", "mail.example.com", "20261206090001.1@mail.example.com")
    assert (events["dave@yahoo.com"].reason, events["dave@yahoo.com"].category) == ("blocked", "reputation")
    delayed = [e for e in events.values() if e.action == "delayed"]
    assert len(delayed) == 1 and not delayed[0].hard  # the deferral: an event, never a hard bounce


def test_the_same_lines_count_once(store, tmp_path):
    ingest = _ingest(store)
    ingest.ingest_file(str(EXAMPLE))
    before = _counts(store)
    again = ingest.ingest_file(str(EXAMPLE))
    assert (again.sent, again.bounced, again.deferred, again.duplicates) == (0, 0, 0, 7)
    # a rotated, compressed copy, and a copy with more lines after it
    rotated = tmp_path / "maillog.1.gz"
    with open(EXAMPLE, "rb") as src, gzip.open(rotated, "wb") as dst:
        shutil.copyfileobj(src, dst)
    ingest.ingest_file(str(rotated))
    grown = tmp_path / "maillog"
    grown.write_text(EXAMPLE.read_text() + (
        "Dec  6 10:00:00 mail postfix/smtp[1]: 0A1B2C3D4E: to=<eve@gmail.com>, relay=x[142.250.1.1]:25, "
        "dsn=2.0.0, status=sent (250 OK)\n"))
    more = ingest.ingest_file(str(grown))
    assert (more.sent, more.duplicates) == (1, 7)
    assert _counts(store) == (before[0] + 1, before[1])


def test_own_sends_and_notifications_are_not_volume(store, tmp_path):
    config = IngestConfig(verp_secret="k" * 32)
    token = encode_token(41, config.verp_secret, "mail.example.com")
    log = tmp_path / "maillog"
    log.write_text(
        f"Dec  6 10:00:00 mail postfix/qmgr[1]: 0A1B2C3D4E: from=<{token}>, size=1, nrcpt=1 (queue active)\n"
        "Dec  6 10:00:01 mail postfix/smtp[1]: 0A1B2C3D4E: to=<a@gmail.com>, relay=x[142.250.1.1]:25, dsn=2.0.0, status=sent (250 OK)\n"
        "Dec  6 10:00:02 mail postfix/qmgr[1]: 0B1B2C3D4E: from=<>, size=1, nrcpt=1 (queue active)\n"
        "Dec  6 10:00:03 mail postfix/smtp[1]: 0B1B2C3D4E: to=<b@gmail.com>, relay=x[142.250.1.1]:25, dsn=2.0.0, status=sent (250 OK)\n"
        f"Dec  6 10:00:04 mail postfix/qmgr[1]: 0C1B2C3D4E: from=<{token}>, size=1, nrcpt=1 (queue active)\n"
        "Dec  6 10:00:05 mail postfix/smtp[1]: 0C1B2C3D4E: to=<c@gmail.com>, relay=x[142.250.1.1]:25, dsn=5.1.1, status=bounced (host x[142.250.1.1] said: 550 5.1.1 The email account that you tried to reach does not exist. (in reply to RCPT TO command))\n")
    totals = _ingest(store, config).ingest_file(str(log))
    assert (totals.sent, totals.own, totals.notifications, totals.bounced) == (0, 1, 1, 1)
    with store() as s:
        event = s.scalars(select(m.BounceEvent)).one()
    assert (event.send_id, event.reason) == (41, "userunknown")


def test_rollups_count_log_volume_beside_imported_volume(store):
    _ingest(store).ingest_file(str(EXAMPLE))
    with store() as s, s.begin():
        update(s, now=NOW)
    with store() as s:
        sent = {(r.dimension, r.key): r.value for r in s.scalars(
            select(Rollup).where(Rollup.metric == "sent", Rollup.day == date(2026, 12, 6)))}
    assert sent[("sending_domain", "mail.example.com")] == 2
    assert sent[("campaign", "december-news")] == 1
    assert sent[("sending_ip", "192.0.2.17")] == 2


def test_unreadable_lines_are_counted_with_their_line(store, tmp_path):
    log = tmp_path / "maillog"
    log.write_bytes(b"Dec  6 10:00:01 mail postfix/smtp[1]: 0A1B2C3D4E: to=<a@gmail.com>, relay=x[142.250.1.1]:25, dsn=2.0.0, status=sent (250 OK)\n"
                    b"Dec  6 10:00:01 mail postfix/smtp[1]: 0A1B2C3D4F: to=<b@gmail.com, status=sent\n"
                    b"\xff\xfe\x00binary\n")
    totals = _ingest(store, batch_lines=1).ingest_file(str(log))
    assert (totals.lines, totals.sent, totals.errors) == (3, 1, 1)
    assert totals.error_lines[0].startswith(f"{log}:2: a delivery result without")


def test_volume_sources_say_where_each_count_came_from(store, database, monkeypatch, capsys):
    from analysis.volume import by_origin, import_csv
    from postwatch.cli import main

    _ingest(store).ingest_file(str(EXAMPLE))
    with store() as s, s.begin():
        import_csv(s, "day,sending_domain,sending_ip,provider,campaign,sent\n"
                      "2026-12-06,mail.example.com,192.0.2.17,google,,1000\n", providers=RESOLVER, now=NOW)
        s.add_all([SendLog(sent_at=NOW, recipient="a@example.net", result="sent"),
                   SendLog(sent_at=NOW, recipient="b@example.net", result="bounced")])
    with store() as s:
        assert by_origin(s, date(2026, 12, 1), date(2026, 12, 31)) == [
            (date(2026, 12, 6), "csv", 1000), (date(2026, 12, 6), "log:postfix", 2),
            (date(2026, 12, 6), "send_log", 1)]
    monkeypatch.setenv("POSTWATCH_DATABASE__URL", database.url)
    assert main(["volume", "sources", "--since", "2026-12-01", "--until", "2026-12-31", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ['{"day": "2026-12-06", "source": "csv", "sent": 1000}',
                     '{"day": "2026-12-06", "source": "log:postfix", "sent": 2}',
                     '{"day": "2026-12-06", "source": "send_log", "sent": 1}']


def test_a_failure_already_stored_from_its_dsn_is_not_stored_again(store, pipeline, tmp_path):
    dsn = ROOT / "sample_reports" / "bounces" / "postfix-user-unknown.eml"
    from ingest.envelope import Envelope

    pipeline.ingest(dsn.read_bytes(), Envelope("file"))
    log = tmp_path / "maillog"
    log.write_text(
        "Jan  9 10:14:52 mail postfix/cleanup[1]: 0A1B2C3D4E: message-id=<20240109101452.a1b2c3@mail.example.com>\n"
        "Jan  9 10:14:52 mail postfix/qmgr[2]: 0A1B2C3D4E: from=<bounces@mail.example.com>, size=1, nrcpt=2 (queue active)\n"
        "Jan  9 10:14:57 mail postfix/smtp[3]: 0A1B2C3D4E: to=<jdoe@example.net>, relay=mx.example.net[198.51.100.25]:25, "
        "dsn=5.1.1, status=bounced (host mx.example.net[198.51.100.25] said: 550 5.1.1 <jdoe@example.net>: "
        "Recipient address rejected: User unknown (in reply to RCPT TO command))\n"
        "Jan  9 10:14:57 mail postfix/smtp[3]: 0A1B2C3D4E: to=<kim@example.net>, relay=mx.example.net[198.51.100.25]:25, "
        "dsn=5.1.1, status=bounced (host mx.example.net[198.51.100.25] said: 550 5.1.1 <kim@example.net>: "
        "Recipient address rejected: User unknown (in reply to RCPT TO command))\n")
    os.utime(log, (1704800000, 1704800000))  # written in January 2024
    totals = _ingest(store).ingest_file(str(log))
    assert (totals.bounced, totals.reported) == (1, 1)
    with store() as s:
        assert sorted(e.recipient for e in s.scalars(select(m.BounceEvent))) == ["jdoe@example.net", "kim@example.net"]


def test_a_dsn_that_arrives_after_the_log_adds_no_second_event(store, pipeline, tmp_path):
    """The other order: the log is read first, then the non-delivery report the MTA mailed for
    the same message and recipient is collected. The report is stored (it is still a message
    postwatch received) but its event is not: the log's event is that failure already."""
    from ingest.envelope import Envelope

    log = tmp_path / "maillog"
    log.write_text(
        "Jan  9 10:14:52 mail postfix/cleanup[1]: 0A1B2C3D4E: message-id=<20240109101452.a1b2c3@mail.example.com>\n"
        "Jan  9 10:14:52 mail postfix/qmgr[2]: 0A1B2C3D4E: from=<bounces@mail.example.com>, size=1, nrcpt=1 (queue active)\n"
        "Jan  9 10:14:57 mail postfix/smtp[3]: 0A1B2C3D4E: to=<jdoe@example.net>, relay=mx.example.net[198.51.100.25]:25, "
        "dsn=5.1.1, status=bounced (host mx.example.net[198.51.100.25] said: 550 5.1.1 <jdoe@example.net>: "
        "Recipient address rejected: User unknown (in reply to RCPT TO command))\n")
    os.utime(log, (1704800000, 1704800000))
    assert _ingest(store).ingest_file(str(log)).bounced == 1
    dsn = (ROOT / "sample_reports" / "bounces" / "postfix-user-unknown.eml").read_bytes()
    out = pipeline.ingest(dsn, Envelope("file"))
    assert (out.status, out.duplicate, out.events) == ("parsed", False, 0)
    other = dsn.replace(b"20240109101452.a1b2c3@mail.example.com", b"20240109101452.zzzzzz@mail.example.com")
    assert pipeline.ingest(other, Envelope("file")).events == 1  # another message: its own failure
    with store() as s:
        events = s.execute(select(m.BounceEvent.recipient, m.InboundMessage.source).join(
            m.InboundMessage, m.InboundMessage.id == m.BounceEvent.message_id).order_by(m.BounceEvent.id)).all()
        assert s.scalar(select(func.count()).select_from(m.InboundMessage)) == 3
    assert events == [("jdoe@example.net", "log:postfix"), ("jdoe@example.net", "file")]
