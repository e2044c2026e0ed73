"""`ingest-log --follow`: a growing file, a line still being written, rotation by renaming
and by truncation, a restart (also after a rotation meanwhile), SIGTERM."""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ingest.logs.files import LogIngest, options_for
from ingest.logs.postfix import PostfixReader
from ingest.logs.writer import LogTotals, LogWriter
from store.mta_logs import LogOffset
from store.volume import VolumeImport
from tests.conftest import query
from tests.ingest import realmta

ROOT = Path(__file__).resolve().parents[3]
_ids = itertools.count(0x1A0000)
WAIT = 20  # seconds any step may take at most


def sent_line() -> str:
    qid = f"{next(_ids):X}0"
    return (f"Dec  6 10:00:00 mail postfix/smtp[1]: {qid}: to=<r{qid}@example.net>, relay=mx.example.net"
            f"[198.51.100.2]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 OK)\n")


def append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


class Follower:
    def __init__(self, store, paths: list[Path]):
        self.store = store
        self.stop = threading.Event()
        self.totals = LogTotals()
        ingest = LogIngest(store, PostfixReader, LogWriter("postfix"), lambda p: options_for(p))
        self.thread = threading.Thread(target=ingest.follow, args=([str(p) for p in paths], self.stop, 0.02,
                                                                   self.totals))
        self.thread.start()

    def sent(self) -> int:
        with self.store() as s:
            return s.scalar(select(func.coalesce(func.sum(VolumeImport.sent), 0)))

    def wait_for(self, n: int) -> None:
        assert realmta.wait_until(lambda: self.sent() >= n, WAIT, step=0.02), f"{self.sent()} sends, not {n}"

    def close(self) -> None:
        self.stop.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


def test_follow_through_growth_rotation_truncation_and_restarts(store, tmp_path):
    log = tmp_path / "maillog"
    log.write_text(sent_line() + sent_line())
    f = Follower(store, [log])
    try:
        f.wait_for(2)
        line = sent_line()
        append(log, line[:40])  # a line being written waits for its end
        assert not realmta.wait_until(lambda: f.totals.lines > 2, 0.3, step=0.02)
        append(log, line[40:])
        f.wait_for(3)
        # rotation by renaming: the writer finishes the old file, then a new one starts
        os.rename(log, tmp_path / "maillog.1")
        append(tmp_path / "maillog.1", sent_line())
        log.write_text(sent_line())
        f.wait_for(5)
        # rotation by copytruncate: the same file, shorter
        log.write_text(sent_line())
        f.wait_for(6)
    finally:
        f.close()
    assert f.sent() == 6
    with store() as s:
        offset = s.get(LogOffset, str(log))
    assert (offset.inode, offset.position) == (os.stat(log).st_ino, log.stat().st_size)

    # a message whose sender was logged before a restart, its result after it
    append(log, "Dec  6 10:00:00 mail postfix/qmgr[1]: 1FFFFF0: from=<news@mail.example.com>, size=1, nrcpt=1 "
                "(queue active)\n")
    f = Follower(store, [log])
    try:
        f.wait_for(6)
        assert realmta.wait_until(lambda: f.totals.lines == 1, WAIT, step=0.02)
    finally:
        f.close()
    append(log, sent_line().replace(f"{next(_ids) - 1:X}0", "1FFFFF0"))
    f = Follower(store, [log])
    try:
        f.wait_for(7)
    finally:
        f.close()
    with store() as s:
        assert s.scalar(select(func.sum(VolumeImport.sent)).where(
            VolumeImport.sending_domain == "mail.example.com")) == 1

    # stopped: lines are written, and the file is rotated away, then a new one starts
    append(log, sent_line())
    os.rename(log, tmp_path / "maillog.2")
    log.write_text(sent_line() + sent_line())
    f = Follower(store, [log])
    try:
        f.wait_for(10)
    finally:
        f.close()
    assert f.sent() == 10 and f.totals.duplicates == 0


def test_the_command_stops_cleanly_on_sigterm(database, tmp_path):
    log = tmp_path / "maillog"
    log.write_text("".join(sent_line() for _ in range(3)))
    env = {**os.environ, "POSTWATCH_DATABASE__URL": database.url, "POSTWATCH_LOGS__POLL_SECONDS": "0.05",
           "POSTWATCH_PROVIDERS__MX_LOOKUPS": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "postwatch.cli", "ingest-log", str(log), "--format", "postfix",
                             "--follow", "--json"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        stored = lambda: (query(database.url, "SELECT coalesce(sum(sent), 0) FROM volume_imports") or [(0,)])[0][0]
        realmta.wait_until(lambda: stored() == 3 or proc.poll() is not None, WAIT)
        append(log, sent_line())
        realmta.wait_until(lambda: stored() == 4 or proc.poll() is not None, WAIT)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert '"sent": 4' in out
