"""Every collector clears `spool/tmp/` of what a killed process left, at its start: `collect
smtp`, its spool worker (restarted after a kill), `collect imap`, `collect drain` and `serve
--role collector`. A file a live process is writing stays."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ingest.spool import Spool
from tests.conftest import need
from tests.ingest.collectors.servers import DOVECOT, free_port, start_dovecot, wait_port

EXE = [sys.executable, "-m", "postwatch.cli"]


def dead_pid() -> int:
    """A process id nobody uses any more (the pid counter moves on, so it stays free)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def leave_files(spool_dir: Path) -> dict[str, Path]:
    """A killed writer's file, one of a writer still running (this test), and an hour-old
    file with a name of another form; returns them by what they are."""
    tmp = spool_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    files = {
        "killed": tmp / f"{time.time_ns():020d}-{dead_pid()}-00000007.msg",
        "live": tmp / f"{time.time_ns():020d}-{os.getpid()}-00000008.msg",
        "old": tmp / "left-by-hand.msg",
    }
    for path in files.values():
        path.write_bytes(b"#postwatch-spool 1 {}\nSubject: half written")
    an_hour_ago = time.time() - 3700
    os.utime(files["old"], (an_hour_ago, an_hour_ago))
    return files


def wait_cleared(files: dict[str, Path], proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while files["killed"].exists() or files["old"].exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"still in tmp/: {sorted(p.name for p in files['killed'].parent.iterdir())}")
        if proc is not None and proc.poll() is not None and proc.returncode != 0:
            raise AssertionError(f"exited with status {proc.returncode}")
        time.sleep(0.1)
    assert files["live"].exists()


def child_of(proc: subprocess.Popen, timeout: float = 30) -> int:
    """The first child of `proc`, once it has one (the collector binds its port and clears
    tmp/ before it forks the spool worker)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + timeout
    while not children.read_text().split():
        if time.monotonic() > deadline:
            raise AssertionError("the collector started no spool worker")
        time.sleep(0.05)
    return int(children.read_text().split()[0])


def environment(tmp_path: Path, url: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    env.update(POSTWATCH_DATABASE__URL=url, POSTWATCH_SPOOL__DIR=str(tmp_path / "spool"),
               POSTWATCH_SMTP__PROCESSES="1", **more)
    return env


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_clean_tmp_removes_what_a_killed_process_left_and_keeps_a_live_writers_file(tmp_path):
    spool = Spool(tmp_path / "spool")
    files = leave_files(spool.dir)
    young = spool.tmp / "someone-elses.msg"
    young.write_bytes(b"x")
    try:
        assert spool.recover() == 2
    finally:
        spool.close()
    assert not files["killed"].exists() and not files["old"].exists()
    assert files["live"].exists() and young.exists()  # a writer still running; a name that says nothing


def test_collect_smtp_and_its_spool_worker_clear_tmp_at_start(tmp_path, database):
    port = free_port()
    files = leave_files(tmp_path / "spool")
    log = open(tmp_path / "collector.log", "ab")
    proc = subprocess.Popen(EXE + ["collect", "smtp", "--listen", f"127.0.0.1:{port}"], cwd=tmp_path,
                            env=environment(tmp_path, database.url), stdout=log, stderr=log)
    try:
        wait_port(port, proc=proc)
        wait_cleared(files, proc)
        # the spool worker (the collector's only child with one acceptor), killed and started again
        os.kill(child_of(proc), signal.SIGKILL)
        files = leave_files(tmp_path / "spool")
        wait_cleared(files, proc)
    finally:
        stop(proc)
    text = (tmp_path / "collector.log").read_text()
    assert "spool worker exited" in text and text.count("removed 2 half-written file(s)") == 2


def test_collect_drain_clears_tmp(tmp_path, database):
    files = leave_files(tmp_path / "spool")
    proc = subprocess.run(EXE + ["collect", "drain"], cwd=tmp_path, env=environment(tmp_path, database.url),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    wait_cleared(files, timeout=0)
    assert "removed 2 half-written file(s)" in proc.stderr


def test_collect_imap_clears_tmp(tmp_path, database):
    need(os.path.exists(DOVECOT), "Dovecot is not installed (Debian package dovecot-imapd)")
    dovecot = start_dovecot()
    try:
        files = leave_files(tmp_path / "spool")
        env = environment(tmp_path, database.url, POSTWATCH_IMAP__MAILBOXES=dovecot.url(tls=False))
        proc = subprocess.run(EXE + ["collect", "imap", "--once"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        dovecot.stop()
    assert proc.returncode == 0, proc.stderr
    wait_cleared(files, timeout=0)
    assert "removed 2 half-written file(s)" in proc.stderr


def test_serve_as_collector_clears_tmp(tmp_path, database):
    port = free_port()
    files = leave_files(tmp_path / "spool")
    env = environment(tmp_path, database.url, POSTWATCH_SMTP__LISTEN=f"127.0.0.1:{port}")
    proc = subprocess.Popen(EXE + ["serve", "--role", "collector"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc=proc, timeout=60)
        wait_cleared(files, proc)
    finally:
        stop(proc)


def test_a_message_the_store_refuses_is_set_aside_and_holds_back_no_other(tmp_path, pipeline, store, caplog):
    """An envelope with a lone surrogate (as 8-bit bytes in EHLO made one, before the
    collector refused them) cannot be encoded for any database. The batch it is in is stored
    file by file, a group file message by message; what is still refused goes to failed/."""
    from sqlalchemy import text

    from ingest.envelope import Envelope
    from ingest.spool import Item
    from ingest.spool_worker import SpoolWorker
    from tests.ingest.collectors.test_smtp_crash import message

    def item(i: int, helo: str = "mx.example.net") -> Item:
        return Item(message(i), Envelope("smtp", f"smtp 192.0.2.1 helo={helo}", "", ("bounces@example.com",)))

    spool = Spool(tmp_path / "spool")
    try:
        spool.put_many([item(0), item(1, helo="caf\udce9")])
        group = spool.put_group([item(2), item(3, helo="x\udcff"), item(4)])
        spool.put_many([item(5)])
        worker = SpoolWorker(spool, pipeline)
        stored = worker.drain()
        set_aside = sorted(p.name for p in worker.set_aside)
        # the IMAP collector's call: a refused message counts as quarantined (moved to that folder)
        imap = spool.put_many([item(6), item(7, helo="caf\udce9")])
        statuses = [s.status for s in worker.store_files(imap)]
    finally:
        spool.close()
    assert stored == 4 and statuses == ["parsed", "quarantined"]
    with store() as s:
        origins = sorted(s.execute(text("select origin from inbound_messages")).scalars())
    assert len(origins) == 5 and all("helo=mx.example.net" in o for o in origins)
    assert spool.count() == 0 and group.name in set_aside and len(set_aside) == 2
    assert sorted(p.name for p in (spool.dir / "failed").iterdir()) == sorted(set_aside + [imap[1].name])
    assert "could not be stored (UnicodeEncodeError" in caplog.text and "move it back to" in caplog.text
