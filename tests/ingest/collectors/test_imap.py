"""The IMAP collector against a real Dovecot that the fixture starts on loopback."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time

import pytest

from ingest.collectors.imap import IMAPCollector, StateFile, parse_mailbox
from ingest.collectors.service import CollectorError, run_imap
from ingest.config import IMAPConfig
from ingest.spool import Spool
from ingest.spool_worker import SpoolWorker
from postwatch.config import load
from tests.conftest import need, query
from tests.ingest.collectors.servers import DOVECOT, start_dovecot
from tests.ingest.messages import dmarc_xml, postfix_dsn, vacation_reply

JUNK = b"From: someone@example.org\r\nSubject: hello\r\n\r\nnot feedback at all\r\n"


@pytest.fixture(scope="module")
def dovecot_server():
    need(os.path.exists(DOVECOT), "Dovecot is not installed (Debian package dovecot-imapd)")
    server = start_dovecot()
    yield server
    server.stop()


@pytest.fixture
def dovecot(dovecot_server):
    """The module's Dovecot, with an empty mailbox for each test."""
    for folder in ("INBOX", "Processed", "Quarantine"):
        for p in dovecot_server.folder_files(folder):
            p.unlink()
    yield dovecot_server


def bounce(i: int) -> bytes:
    return postfix_dsn(recipients=((f"gone{i}@example.net", "5.1.1",
                                    f"550 5.1.1 <gone{i}@example.net>: Recipient address rejected: User unknown"),))


def make(tmp_path, dovecot, pipeline, **changes):
    config = IMAPConfig(ca_file=str(dovecot.cert), timeout_seconds=10, backoff_max_seconds=1, **changes)
    spool = Spool(tmp_path / "spool")
    worker = SpoolWorker(spool, pipeline)
    state = StateFile(spool.dir / "imap-state.json")
    mailbox = parse_mailbox(dovecot.url())
    return IMAPCollector(mailbox, config, spool, worker.store_files, state, 1_000_000), spool


def count(store, table="inbound_messages") -> int:
    from sqlalchemy import text

    with store() as s:
        return s.execute(text(f"select count(*) from {table}")).scalar_one()


def test_fetch_store_then_move_processed_and_quarantined(tmp_path, dovecot, pipeline, store):
    for i in range(3):
        dovecot.deliver(bounce(i))
    dovecot.deliver(vacation_reply())
    dovecot.deliver(dmarc_xml())
    dovecot.deliver(JUNK)
    collector, spool = make(tmp_path, dovecot, pipeline, batch_size=2)
    collector.run(once=True)
    assert collector.fetched == 6
    assert count(store) == 6
    assert dovecot.folder_files("INBOX") == []
    assert len(dovecot.folder_files("Processed")) == 5
    [junk] = dovecot.folder_files("Quarantine")
    assert b"not feedback at all" in junk.read_bytes()
    assert spool.pending() == []  # drained after the commit


def test_a_restart_resumes_and_the_same_message_is_stored_once(tmp_path, dovecot, pipeline, store):
    dovecot.deliver(bounce(1))
    collector, _ = make(tmp_path, dovecot, pipeline)
    collector.run(once=True)
    validity, last = collector.state.get(collector.mailbox.key)
    assert validity and last >= 1
    dovecot.deliver(bounce(1))  # delivered again
    dovecot.deliver(bounce(2))
    again, _ = make(tmp_path, dovecot, pipeline)  # a new process: state from the file
    again.run(once=True)
    assert again.fetched == 2
    assert count(store) == 2
    assert len(dovecot.folder_files("Processed")) == 3


def test_the_log_says_how_many_were_new_and_how_many_stored_before(tmp_path, dovecot, pipeline, store, caplog):
    """A mailbox read again from the start (its state lost, or UIDVALIDITY changed) holds
    messages stored before: the log says so rather than calling them stored."""
    for i in range(3):
        dovecot.deliver(bounce(i))
    first, _ = make(tmp_path, dovecot, pipeline, processed_folder="")  # left in INBOX: read again below
    with caplog.at_level("INFO", logger="ingest.collectors.imap"):
        first.run(once=True)
        (tmp_path / "spool" / "imap-state.json").unlink()
        dovecot.deliver(bounce(3))
        again, _ = make(tmp_path, dovecot, pipeline)
        again.run(once=True)
    said = [r.getMessage() for r in caplog.records if "message(s) read" in r.getMessage()]
    first_pass, second_pass = (s.split(": ", 1)[1] for s in said)
    assert first_pass.startswith("3 message(s) read: 3 new, 0 already stored;")
    assert second_pass == "4 message(s) read: 1 new, 3 already stored; 4 moved to Processed, 0 to Quarantine"
    assert again.duplicates == 3 and count(store) == 4


def test_messages_over_the_size_limit_go_to_quarantine_unread(tmp_path, dovecot, pipeline, store):
    dovecot.deliver(b"Subject: big\r\n\r\n" + b"x" * 5000 + b"\r\n")
    collector, _ = make(tmp_path, dovecot, pipeline)
    collector.max_bytes = 1000
    collector.run(once=True)
    assert count(store) == 0
    assert len(dovecot.folder_files("Quarantine")) == 1


def test_large_messages_are_fetched_and_stored_a_few_at_a_time(tmp_path, dovecot, pipeline, store, monkeypatch):
    """A batch of large messages (the bounces of one big mailing, each returning it whole) is
    held FETCH_BYTES at a time, and stored BATCH_BYTES at a time, not a batch at once."""
    import ingest.collectors.imap
    import ingest.spool_worker

    big = [bounce(i) + b"X-Padding: " + b"p" * 20_000 + b"\r\n" for i in range(6)]
    for raw in big:
        dovecot.deliver(raw)
    dovecot.deliver(bounce(99))
    monkeypatch.setattr(ingest.collectors.imap, "FETCH_BYTES", 50_000)
    monkeypatch.setattr(ingest.spool_worker, "BATCH_BYTES", 30_000)
    fetched, stored = [], []
    fetch, ingest_ = IMAPCollector._fetch, SpoolWorker._ingest
    monkeypatch.setattr(IMAPCollector, "_fetch", lambda self, client, uids: fetched.append(len(uids)) or
                        fetch(self, client, uids))
    monkeypatch.setattr(SpoolWorker, "_ingest", lambda self, entries, files: stored.append(len(entries)) or
                        ingest_(self, entries, files))
    collector, _ = make(tmp_path, dovecot, pipeline, batch_size=100)
    collector.run(once=True)
    assert collector.fetched == 7 and count(store) == 7
    assert fetched == [2, 2, 3] and stored == [2, 2, 2, 1]  # 2 x 20 KB < 50 KB; then the small one
    assert len(dovecot.folder_files("Processed")) == 7 and dovecot.folder_files("INBOX") == []


def test_idle_picks_up_a_new_message_while_waiting(tmp_path, dovecot, pipeline, store):
    collector, _ = make(tmp_path, dovecot, pipeline)
    thread = threading.Thread(target=collector.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # connected and idling
        dovecot.deliver(bounce(7))
        deadline = time.monotonic() + 20
        while count(store) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert count(store) == 1
    finally:
        collector.stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_a_lost_server_is_retried_and_logged(tmp_path, dovecot, pipeline, caplog):
    collector, _ = make(tmp_path, dovecot, pipeline)
    collector.mailbox = dataclasses.replace(collector.mailbox, port=1)  # nothing listens there
    thread = threading.Thread(target=collector.run, daemon=True)
    with caplog.at_level("WARNING", logger="ingest.collectors.imap"):
        thread.start()
        time.sleep(2.5)
        collector.stop.set()
        thread.join(10)
    retries = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert len(retries) >= 2
    assert "connection refused" in retries[0]


def test_an_untrusted_certificate_is_a_sentence(tmp_path, dovecot, pipeline):
    collector, _ = make(tmp_path, dovecot, pipeline)
    collector.config = dataclasses.replace(collector.config, ca_file="")
    with pytest.raises(Exception, match="certificate is not trusted.*imap.ca_file"):
        collector.run(once=True)


def test_wrong_password_is_a_sentence(tmp_path, dovecot, pipeline):
    collector, _ = make(tmp_path, dovecot, pipeline)
    collector.mailbox = dataclasses.replace(collector.mailbox, password="wrong")
    with pytest.raises(Exception, match="login refused.*check the user and password"):
        collector.run(once=True)


def test_mailbox_addresses():
    mb = parse_mailbox("imaps://fbl%40example.com@mail.example.com/Reports%2FFBL", "pw")
    assert (mb.user, mb.host, mb.port, mb.folder, mb.password) == (
        "fbl@example.com", "mail.example.com", 993, "Reports/FBL", "pw")
    assert "pw" not in str(parse_mailbox("imap://u:secret@h/INBOX"))
    with pytest.raises(ValueError, match="imaps://"):
        parse_mailbox("pop3://u:p@h/")
    with pytest.raises(ValueError, match="no password"):
        parse_mailbox("imaps://u@h/INBOX")


def test_run_imap_without_mailboxes_says_what_to_set():
    with pytest.raises(CollectorError, match="set imap.mailboxes"):
        run_imap(load(environ={}))


def test_postwatch_collect_imap_once(tmp_path, dovecot, database):
    dovecot.deliver(bounce(3))
    dovecot.deliver(JUNK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    env.update(POSTWATCH_IMAP__MAILBOXES=dovecot.url(), POSTWATCH_IMAP__CA_FILE=str(dovecot.cert),
               POSTWATCH_DATABASE__URL=database.url)
    proc = subprocess.run([sys.executable, "-m", "postwatch.cli", "collect", "imap", "--once"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "connected (TLS)" in proc.stderr
    assert "2 message(s) read: 2 new, 0 already stored; 1 moved to Processed, 1 to Quarantine" in proc.stderr
    assert query(database.url, "select count(*) from inbound_messages where source = 'imap'") == [(2,)]
