"""RFC 3834 auto-replies are recognised, and never taken for bounces."""
from __future__ import annotations

import email
from pathlib import Path

import pytest

from ingest.parse import parse_bytes
from ingest.parsers.autoreply import is_auto_reply

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_reports"

BASE = "From: Karl <karl@example.org>\nTo: news@example.com\nSubject: {subject}\n{headers}\nThanks, I am away.\n"


def msg(subject="Re: Offers", headers=""):
    return BASE.format(subject=subject, headers=headers + ("\n" if headers else "")).encode()


def test_sample():
    r = parse_bytes((SAMPLES / "autoreply/exchange-out-of-office.eml").read_bytes())
    assert (r.kind, r.error, r.events) == ("auto_reply", None, [])


@pytest.mark.parametrize("headers", [
    "Auto-Submitted: auto-replied",
    "Auto-Submitted: auto-replied (vacation)",
    "X-Auto-Response-Suppress: OOF, AutoReply",
    "X-Apple-Action: VACATION",
    "Precedence: auto_reply",
    "X-Autoreply: yes",
    "X-Autorespond: Out of office",
])
def test_header_markers(headers):
    assert parse_bytes(msg(headers=headers)).kind == "auto_reply"


@pytest.mark.parametrize("subject", ["Automatic reply: Offers", "Auto: Offers", "Out of Office: Offers",
                                     "Auto Response: Offers", "Réponse automatique : Offers",
                                     "Abwesenheitsnotiz: Offers", "AutoReply: Offers",
                                     "=?UTF-8?Q?R=C3=A9ponse_automatique_:_Offers?="])
def test_subject_markers(subject):
    assert parse_bytes(msg(subject=subject)).kind == "auto_reply"


def test_an_ordinary_reply_is_not_an_auto_reply():
    assert not is_auto_reply(email.message_from_bytes(msg(subject="Re: Offers")))
    assert not is_auto_reply(email.message_from_bytes(msg(subject="Vacation deals inside")))


def test_system_mail_is_excluded():
    raw = b"From: root@host.example.org\nTo: ops@example.com\nSubject: Security information for host\n" \
          b"Auto-Submitted: auto-generated\n\nsudo\n"
    assert not is_auto_reply(email.message_from_bytes(raw))


def test_a_dsn_with_auto_submitted_is_a_bounce():
    raw = (SAMPLES / "bounces/postfix-user-unknown.eml").read_bytes()
    assert b"Auto-Submitted: auto-replied" in raw
    r = parse_bytes(raw)
    assert r.kind == "bounce"
    assert r.events[0]["recipient"] == "jdoe@example.net"


def test_exim_failure_with_auto_submitted_is_a_bounce():
    r = parse_bytes((SAMPLES / "bounces/exim-mailbox-full.eml").read_bytes())
    assert r.kind == "bounce"
