"""Bounces made by a real Postfix (Debian's package), checked against what its DSNs mean.

A sending Postfix relays one message per case to a receiving Postfix, to Dovecot LMTP with a
tiny quota, or to a domain the loopback DNS server says does not exist; every failure comes
back as a DSN into the sender's Maildir, and `ingest.parse.parse_bytes` reads it. Nothing
here was tuned to the classifier: the expected values are what Postfix's and Dovecot's
wording means under RFC 3463 and the reason vocabulary of DESIGN.md. Everything runs on
127/8; the deferred cases expire after a few seconds of queue lifetime.
"""
from __future__ import annotations

import email
import email.policy
import email.utils
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.config import IngestConfig
from ingest.parse import parse_bytes
from tests.conftest import need
from tests.ingest import realmta
from tests.ingest.collectors.servers import NOBODY, free_port

SENDER = "bounces@sender.test"
QUEUE_LIFETIME = 6  # seconds a deferred message stays before Postfix returns it
DEADLINE = 40  # seconds to wait for every DSN


@dataclass(frozen=True)
class Case:
    id: str
    recipient: str
    wording: str  # what the DSN's Diagnostic-Code says, so the case is known to be the intended one
    reason: str
    status: str
    hard: bool
    size: int = 600  # bytes of body


CASES = [
    # the receiver's local_recipient_maps: "550 5.1.1 <...>: Recipient address rejected:
    # User unknown in local recipient table"
    Case("userunknown", "nobody@receiver.test", "User unknown in local recipient table",
         "userunknown", "5.1.1", True),
    # NXDOMAIN for MX and A from the loopback DNS server: "Host or domain name not found.
    # Name service error for name=... type=A: Host not found", which Postfix reports as 5.4.4
    Case("hostunknown", "someone@unresolvable.test", "Host or domain name not found",
         "hostunknown", "5.4.4", True),
    # Dovecot LMTP, quota 1K: "552 5.2.2 <...> Quota exceeded (mailbox for user is full)"
    Case("mailboxfull", "full@quota.test", "Quota exceeded (mailbox for user is full)",
         "mailboxfull", "5.2.2", False, size=4000),
    # the receiver announces SIZE 10240, so the sending Postfix gives up by itself:
    # "message size N exceeds size limit 10240 of server ..." (5.3.4)
    Case("mesgtoobig-size", "big@receiver.test", "exceeds size limit",
         "mesgtoobig", "5.3.4", False, size=20000),
    # a receiver listener that hides SIZE refuses after DATA: "552 5.3.4 Error: message file too big"
    Case("mesgtoobig-data", "bigdata@receiver.test", "message file too big",
         "mesgtoobig", "5.3.4", False, size=20000),
    # the receiver does not serve elsewhere.test: "554 5.7.1 <...>: Relay access denied"
    Case("norelaying", "someone@elsewhere.test", "Relay access denied",
         "norelaying", "5.7.1", False),
    # smtp_tls_security_level = encrypt toward a receiver without STARTTLS, left to expire:
    # "TLS is required, but was not offered by host ..." (4.7.4)
    Case("failedstarttls", "tls@receiver.test", "TLS is required, but was not offered",
         "failedstarttls", "4.7.4", False),
    # "450 4.7.1 <...>: Recipient address rejected: Greylisted, try again later" on every try
    # until the queue lifetime ran out: Action failed with a 4.x.x status means expired
    Case("expired", "grey@receiver.test", "Greylisted, try again later",
         "expired", "4.7.1", False),
]


@dataclass
class Returned:
    dsns: dict[str, bytes]  # recipient -> the raw DSN that names it
    unmatched: list[bytes]  # DSNs naming no recipient we sent to
    dns_queries: list[tuple[str, str]]


def message(case: Case) -> bytes:
    filler = "".join(f"line {i:05d} of the body of a test message for the {case.id} case\r\n"
                     for i in range(case.size // 60 + 1))
    return (f"From: Sender <{SENDER}>\r\nTo: <{case.recipient}>\r\n"
            f"Subject: postwatch real-MTA test: {case.id}\r\n"
            f"Message-ID: <{case.id}.{time.time_ns()}@sender.test>\r\n"
            f"Date: {email.utils.formatdate(localtime=False)}\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{filler}").encode()


def recipient_blocks(raw: bytes) -> dict[str, dict[str, str]]:
    """Per-recipient fields of a DSN's message/delivery-status part, read with the standard
    library only (independent of the parser under test), whitespace unfolded."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    found = {}
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in part.get_payload():
            value = block.get("Final-Recipient") or block.get("Original-Recipient")
            if value:
                found[value.split(";", 1)[-1].strip().lower()] = {
                    k.lower(): " ".join(str(v).split()) for k, v in block.items()}
    return found


@pytest.fixture(scope="module")
def returned():
    missing = realmta.missing_parts()
    need(not missing, "the real-MTA bounce tests need " + ", ".join(missing) + " (installed by .ci/run)")
    root = Path(tempfile.mkdtemp(prefix="pw-realmta-"))
    root.chmod(0o755)  # virtual(8) and Dovecot write there as nobody
    running = []
    dns = realmta.PortFiftyThreeDNS().start()
    try:
        lmtp = realmta.start_dovecot_lmtp(root / "dovecot", {"full@quota.test": "*:storage=1K"})
        running.append(lmtp)

        r_main, r_nosize = free_port(), free_port()
        receiver = realmta.start_postfix(
            root / "receiver", "receiver", nameserver=dns.host,
            main={
                "myhostname": "mx.receiver.test",
                "mydomain": "receiver.test",
                "myorigin": "receiver.test",
                "mydestination": "receiver.test",
                "local_recipient_maps": f"texthash:{root}/receiver/conf/users",
                "mynetworks": "127.0.0.0/8",
                # refuses mail for domains it does not serve, also from loopback
                "smtpd_relay_restrictions": "reject_unauth_destination",
                "smtpd_recipient_restrictions": f"check_recipient_access texthash:{root}/receiver/conf/greylist",
                "message_size_limit": "10240",
            },
            listeners=[f"127.0.0.1:{r_main} inet n - y - - smtpd",
                       f"127.0.0.1:{r_nosize} inet n - y - - smtpd -o smtpd_discard_ehlo_keywords=size"],
            files={"users": "big x\nbigdata x\ntls x\ngrey x\n",
                   "greylist": "grey@receiver.test 450 4.7.1 Greylisted, try again later\n"})
        running.append(receiver)

        s_port = free_port()
        mail = root / "sender" / "mail"
        mail.mkdir(parents=True)
        for box in ("bounces", "postmaster"):
            for sub in ("", "/new", "/cur", "/tmp"):
                (mail / f"{box}{sub}").mkdir(exist_ok=True)
        for path in [mail, *mail.rglob("*")]:
            shutil.chown(path, NOBODY, NOBODY)
        # someone@unresolvable.test has no entry: the default smtp transport looks up its MX
        transport = "".join([
            f"nobody@receiver.test smtp:[127.0.0.1]:{r_main}\n",
            f"big@receiver.test smtp:[127.0.0.1]:{r_main}\n",
            f"bigdata@receiver.test smtp:[127.0.0.1]:{r_nosize}\n",
            f"grey@receiver.test smtp:[127.0.0.1]:{r_main}\n",
            f"someone@elsewhere.test smtp:[127.0.0.1]:{r_main}\n",
            f"tls@receiver.test tlsonly:[127.0.0.1]:{r_main}\n",
            f"full@quota.test lmtp:inet:127.0.0.1:{lmtp.port}\n",
        ])
        sender = realmta.start_postfix(
            root / "sender", "sender", nameserver=dns.host,
            main={
                "myhostname": "mta.sender.test",
                "mydomain": "sender.test",
                "myorigin": "sender.test",
                "mydestination": "",
                "mynetworks": "127.0.0.0/8",
                "smtpd_relay_restrictions": "permit_mynetworks, reject",
                "transport_maps": f"texthash:{root}/sender/conf/transport",
                # the DSNs come home to a Maildir per address
                "virtual_mailbox_domains": "sender.test",
                "virtual_mailbox_base": str(mail),
                "virtual_mailbox_maps": f"texthash:{root}/sender/conf/mailboxes",
                "virtual_uid_maps": f"static:{NOBODY}",
                "virtual_gid_maps": f"static:{NOBODY}",
                # seconds instead of days, so that deferred mail is returned within the test
                "maximal_queue_lifetime": f"{QUEUE_LIFETIME}s",
                "bounce_queue_lifetime": f"{QUEUE_LIFETIME}s",
                "queue_run_delay": "1s",
                "minimal_backoff_time": "1s",
                "maximal_backoff_time": "2s",
                "delay_warning_time": "0",
            },
            listeners=[f"127.0.0.1:{s_port} inet n - y - - smtpd"],
            # a transport of its own, so that only this recipient's mail demands TLS
            services="tlsonly   unix  -       -       y       -       -       smtp\n"
                     "  -o smtp_tls_security_level=encrypt\n",
            files={"transport": transport,
                   "mailboxes": f"{SENDER} bounces/\npostmaster@sender.test postmaster/\n"})
        running.append(sender)
        realmta.wait_postfix(receiver, r_main)
        realmta.wait_postfix(receiver, r_nosize)
        realmta.wait_postfix(sender, s_port)

        for case in CASES:
            realmta.send(s_port, SENDER, case.recipient, message(case))

        inbox = [mail / "bounces" / "new", mail / "bounces" / "cur"]
        wanted = {c.recipient for c in CASES}
        dsns: dict[str, bytes] = {}
        unmatched: list[bytes] = []
        seen: set[Path] = set()

        def collect() -> bool:
            for folder in inbox:
                for path in sorted(folder.iterdir()):
                    if path in seen:
                        continue
                    seen.add(path)
                    raw = path.read_bytes()
                    names = [n for n in recipient_blocks(raw) if n in wanted]
                    for name in names:
                        dsns[name] = raw
                    if not names:
                        unmatched.append(raw)
            return wanted <= set(dsns)

        last_flush = time.monotonic()

        def flush() -> None:
            nonlocal last_flush
            if time.monotonic() - last_flush > 2:
                sender.flush()
                last_flush = time.monotonic()

        realmta.wait_until(collect, DEADLINE, tick=flush)
        missing = sorted(wanted - set(dsns))
        if missing:
            pytest.fail(f"no DSN within {DEADLINE}s for {missing}\n--- sender queue ---\n"
                        f"{sender.queue_listing()}\n{sender.log_text()}\n{receiver.log_text(4000)}\n"
                        f"{lmtp.log_text()}", pytrace=False)
        yield Returned(dsns, unmatched, dns.queries)
    finally:
        for part in reversed(running):
            part.stop()
        dns.stop()
        shutil.rmtree(root, ignore_errors=True)


def event_for(returned: Returned, recipient: str) -> dict:
    result = parse_bytes(returned.dsns[recipient], IngestConfig())
    assert result.error is None, result.error
    assert result.kind == "bounce", f"kind {result.kind!r} for the DSN of {recipient}"
    events = [e for e in result.events if (e.get("recipient") or "").lower() == recipient]
    assert len(events) == 1, f"events for {recipient}: {result.events}"
    return events[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_real_postfix_dsn_is_classified_by_what_it_says(returned, case):
    fields = recipient_blocks(returned.dsns[case.recipient])[case.recipient]
    assert case.wording in fields.get("diagnostic-code", ""), f"not the intended failure: {fields}"
    assert fields.get("status") == case.status and fields.get("action") == "failed", fields
    got = event_for(returned, case.recipient)
    seen = {k: got.get(k) for k in ("action", "reason", "status", "hard_bounce", "diagnostic", "rule")}
    assert got.get("action") == "failed", seen
    assert got.get("status") == case.status, seen
    assert got.get("reason") == case.reason, seen
    assert got.get("hard_bounce") is case.hard, seen
    if case.status.startswith("4."):
        assert got.get("hard_bounce") is False, "a 4.x.x status is never a hard bounce"


def test_every_recipient_sent_to_has_exactly_one_event(returned):
    assert returned.unmatched == [], "DSNs for recipients we did not send to"
    counts = {}
    for raw in {id(r): r for r in returned.dsns.values()}.values():
        result = parse_bytes(raw, IngestConfig())
        for event in result.events:
            recipient = (event.get("recipient") or "").lower()
            counts[recipient] = counts.get(recipient, 0) + 1
    assert counts == {c.recipient: 1 for c in CASES}


def test_the_unknown_domain_was_asked_of_the_loopback_dns_server(returned):
    asked = {name for name, _ in returned.dns_queries}
    assert "unresolvable.test" in asked, returned.dns_queries
