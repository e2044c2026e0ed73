"""A real Postfix (Debian's package) on loopback sends to a sink (Postfix's smtp-sink) and to
unknown users of a receiving Postfix, writing its own mail log (`maillog_file`); that log,
read by `postwatch ingest-log`, gives the sends and failures that were made — counted once
however often it is read."""
from __future__ import annotations

import email.utils
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from store import models as m
from store.volume import VolumeImport
from tests.conftest import need
from tests.ingest import realmta
from tests.ingest.collectors.servers import NOBODY, free_port, wait_port

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SENDER = "news@sender.test"
SINK = [f"reader{i}@sink.test" for i in range(5)]
UNKNOWN = ["nobody@receiver.test", "gone@receiver.test"]
CAMPAIGN = {"reader0@sink.test": "winter-sale", "reader1@sink.test": "winter-sale"}
DEADLINE = 40


def _message(rcpt: str) -> bytes:
    campaign = f"X-Campaign: {CAMPAIGN[rcpt]}\r\n" if rcpt in CAMPAIGN else ""
    return (f"From: <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: postwatch log test\r\n{campaign}"
            f"Message-ID: <{time.time_ns()}@sender.test>\r\nDate: {email.utils.formatdate()}\r\n\r\nhello\r\n").encode()


@pytest.fixture(scope="module")
def maillog():
    missing = realmta.missing_parts()
    if not Path(SMTP_SINK).exists():
        missing.append("smtp-sink (Debian package postfix)")
    need(not missing, "the real-Postfix log test needs " + ", ".join(missing) + " (installed by .ci/run)")
    root = Path(tempfile.mkdtemp(prefix="pw-postfix-log-"))
    root.chmod(0o755)
    running: list = []
    sink = None
    dns = realmta.PortFiftyThreeDNS().start()
    try:
        r_port, sink_port, s_port = free_port(), free_port(), free_port()
        sink = subprocess.Popen([SMTP_SINK, "-u", "nobody", f"127.0.0.1:{sink_port}", "10"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(sink_port, timeout=10, proc=sink)
        receiver = realmta.start_postfix(
            root / "receiver", "receiver", nameserver=dns.host,
            main={"myhostname": "mx.receiver.test", "mydomain": "receiver.test", "myorigin": "receiver.test",
                  "mydestination": "receiver.test", "mynetworks": "127.0.0.0/8",
                  "local_recipient_maps": f"texthash:{root}/receiver/conf/users"},
            listeners=[f"127.0.0.1:{r_port} inet n - y - - smtpd"], files={"users": "someone x\n"})
        running.append(receiver)
        mail = root / "sender" / "mail"
        for sub in ("", "/news", "/news/new", "/news/cur", "/news/tmp"):
            (mail.parent / ("mail" + sub)).mkdir(parents=True, exist_ok=True)
        for path in [mail, *mail.rglob("*")]:
            shutil.chown(path, NOBODY, NOBODY)
        sender = realmta.start_postfix(
            root / "sender", "sender", nameserver=dns.host,
            main={"myhostname": "mta.sender.test", "mydomain": "sender.test", "myorigin": "sender.test",
                  "mydestination": "", "mynetworks": "127.0.0.0/8",
                  "smtpd_relay_restrictions": "permit_mynetworks, reject",
                  "transport_maps": f"texthash:{root}/sender/conf/transport",
                  "header_checks": f"regexp:{root}/sender/conf/header_checks",
                  "virtual_mailbox_domains": "sender.test", "virtual_mailbox_base": str(mail),
                  "virtual_mailbox_maps": f"texthash:{root}/sender/conf/mailboxes",
                  "virtual_uid_maps": f"static:{NOBODY}", "virtual_gid_maps": f"static:{NOBODY}"},
            listeners=[f"127.0.0.1:{s_port} inet n - y - - smtpd"],
            files={"transport": f"sink.test smtp:[127.0.0.1]:{sink_port}\nreceiver.test smtp:[127.0.0.1]:{r_port}\n",
                   "header_checks": "/^X-Campaign:/ INFO\n",
                   "mailboxes": f"{SENDER} news/\n"})
        running.append(sender)
        realmta.wait_postfix(receiver, r_port)
        realmta.wait_postfix(sender, s_port)
        for rcpt in SINK + UNKNOWN:
            realmta.send(s_port, SENDER, rcpt, _message(rcpt))

        def done() -> bool:
            text = sender.maillog.read_text(errors="replace") if sender.maillog.exists() else ""
            results = re.findall(r"to=<([^>]+)>.*status=(sent|bounced)", text)
            return all((r, "sent") in results for r in SINK) and all((r, "bounced") in results for r in UNKNOWN) \
                and sum(1 for r, s in results if r == SENDER) >= len(UNKNOWN)

        if not realmta.wait_until(done, DEADLINE):
            pytest.fail(f"Postfix did not deliver within {DEADLINE}s\n{sender.queue_listing()}\n{sender.log_text()}",
                        pytrace=False)
        yield sender.maillog
    finally:
        for part in reversed(running):
            part.stop()
        if sink is not None:
            sink.terminate()
            sink.wait(10)
        dns.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_the_real_mail_log_gives_what_was_sent_and_bounced(maillog, store, database, monkeypatch, capsys):
    from postwatch.cli import main

    monkeypatch.setenv("POSTWATCH_DATABASE__URL", database.url)
    monkeypatch.setenv("POSTWATCH_PROVIDERS__MX_LOOKUPS", "false")
    text = maillog.read_text(errors="replace")
    assert main(["ingest-log", str(maillog), "--format", "postfix", "--sending-ip", "127.0.0.1", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["sent"], got["bounced"], got["errors"]) == (len(SINK), len(UNKNOWN), 0), text
    assert got["reasons"] == {"userunknown": len(UNKNOWN)}, text
    # each non-delivery notification: the bounce daemon's line and its delivery to the sender
    assert got["notifications"] >= 2 * len(UNKNOWN), text
    with store() as s:
        volume = {(r.sending_domain, r.sending_ip, r.campaign, r.origin): r.sent for r in s.scalars(select(VolumeImport))}
        events = {e.recipient: e for e in s.scalars(select(m.BounceEvent))}
    assert volume == {("sender.test", "127.0.0.1", "winter-sale", "log:postfix"): 2,
                      ("sender.test", "127.0.0.1", "", "log:postfix"): len(SINK) - 2}, text
    assert set(events) == set(UNKNOWN)
    for e in events.values():
        assert (e.status, e.reply_code, e.smtp_command, e.category, e.hard) == ("5.1.1", "550", "RCPT", "hygiene", True)
        assert "User unknown in local recipient table" in e.diagnostic
        assert e.from_domain == "sender.test" and e.orig_message_id

    # read again: nothing new
    assert main(["ingest-log", str(maillog), "--format", "postfix", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    counted = got["sent"] + got["bounced"] + got["deferred"] + got["notifications"] + got["own_sends"]
    assert (again["sent"], again["bounced"], again["duplicates"]) == (0, 0, counted)
