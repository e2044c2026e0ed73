"""Group spool files: what the SMTP collector's group committer writes, read back and stored."""
from __future__ import annotations

import asyncio

from sqlalchemy import text

from ingest.envelope import Envelope
from ingest.spool import GroupCommitter, Item, Spool
from ingest.spool_worker import SpoolWorker
from tests.ingest.collectors.test_smtp_crash import message


def items(n: int, first: int = 0) -> list[Item]:
    return [Item(message(i), Envelope("smtp", f"smtp 192.0.2.{i} helo=mx{i}", "" if i % 2 else f"s{i}@example.net",
                                      (f"bounces+u{i}=example.net@send.example.com",)))
            for i in range(first, first + n)]


def test_a_group_file_reads_back_as_its_messages_in_order(tmp_path):
    spool = Spool(tmp_path)
    path = spool.put_group(items(3))
    assert spool.pending() == [path] and not any(spool.tmp.iterdir())
    entries = spool.read_all(path)
    assert [e.raw for e in entries] == [message(i) for i in range(3)]
    assert [e.envelope.mail_from for e in entries] == ["s0@example.net", "", "s2@example.net"]
    assert entries[1].envelope.rcpt_tos == ("bounces+u1=example.net@send.example.com",)
    assert entries[2].envelope.origin == "smtp 192.0.2.2 helo=mx2"
    assert spool.count() == 1 and spool.count_messages() == 3


def test_one_message_files_and_hand_dropped_files_still_read(tmp_path):
    spool = Spool(tmp_path)
    [single] = spool.put_many(items(1))
    (spool.new / "0-by-hand.msg").write_bytes(b"Subject: dropped in\r\n\r\nhi\r\n")
    assert spool.read(single).raw == message(0)
    assert spool.read(spool.new / "0-by-hand.msg").envelope == Envelope("spool")
    assert spool.count_messages() == 2


def test_a_damaged_group_is_kept_whole_rather_than_lost(tmp_path):
    spool = Spool(tmp_path)
    path = spool.put_group(items(2))
    path.write_bytes(path.read_bytes()[:-5])  # sizes no longer add up
    [entry] = spool.read_all(path)
    assert entry.raw == path.read_bytes()


def test_the_committer_groups_concurrent_messages_and_answers_each(tmp_path):
    spool = Spool(tmp_path)
    committer = GroupCommitter(spool)

    async def many():
        return await asyncio.gather(*(committer.submit(it) for it in items(50)))

    try:
        paths = asyncio.run(many())
    finally:
        committer.stop()
    assert committer.committed == 50 and committer.groups < 50
    stored = [e.raw for p in dict.fromkeys(paths) for e in spool.read_all(p)]
    assert sorted(stored) == sorted(message(i) for i in range(50))


def test_a_spool_error_reaches_every_waiting_session(tmp_path):
    spool = Spool(tmp_path)
    committer = GroupCommitter(spool)
    spool.tmp.rmdir()  # writing into tmp/ now fails

    async def one():
        try:
            await committer.submit(items(1)[0])
        except OSError as exc:
            return str(exc)

    try:
        said = asyncio.run(one())
    finally:
        committer.stop()
    assert said.startswith("cannot write to the spool")


def test_the_worker_stores_groups_and_deletes_them_after_the_commit(tmp_path, pipeline, store):
    spool = Spool(tmp_path)
    for first in range(0, 450, 150):
        spool.put_group(items(150, first))
    spool.put_group(items(5, 0))  # the same messages again: stored once
    worker = SpoolWorker(spool, pipeline, batch_size=200)
    assert worker.drain() == 455
    assert spool.pending() == []
    with store() as s:
        assert s.execute(text("select count(*) from inbound_messages")).scalar_one() == 450


def test_the_worker_waits_while_told_and_then_stores_all(tmp_path, pipeline):
    spool = Spool(tmp_path)
    spool.put_group(items(30))
    worker = SpoolWorker(spool, pipeline, batch_size=10)
    assert worker.drain(pause=lambda: True) == 0 and spool.count_messages() == 30
    calls = iter([False, True])  # one batch, then asked to wait
    assert worker.drain(pause=lambda: next(calls)) == 30  # a group file is not split
    assert spool.pending() == []


def test_intake_comes_first_for_a_while_only():
    from ingest.collectors.limits import ClientLimits
    from ingest.collectors.service import _IntakeFirst
    from ingest.config import SMTPConfig

    limits = ClientLimits(SMTPConfig())
    pause = _IntakeFirst(limits, seconds=0.2)
    assert not pause()  # no session open: store now
    limits.enter("192.0.2.1")
    assert pause()  # a burst: wait
    import time

    time.sleep(0.25)
    assert not pause()  # waited long enough: store beside the sessions
    limits.leave("192.0.2.1")
    assert not pause()
    limits.enter("192.0.2.1")
    assert pause()  # a new burst waits again
