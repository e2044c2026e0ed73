"""Detection and parsing read a message once: what a detector read to decide is what its
parser goes on from, so no detector or parser entry runs twice for one message."""
from __future__ import annotations

import collections
import functools
from pathlib import Path

import pytest

import ingest.bounce.extract as extract
import ingest.bounce.formats as formats
import ingest.detect as detect
import ingest.parse as parse
import ingest.parsers.arf as arf
import ingest.parsers.reports as reports
from ingest.parse import parse_bytes

SAMPLES = Path(__file__).resolve().parents[2] / "sample_reports"
QMAIL = b"""From: MAILER-DAEMON@mx.example.net
To: bounces@send.example.com
Subject: failure notice

Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<gone@example.net>:
192.0.2.1 does not like recipient.
Remote host said: 550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown
Giving up on 192.0.2.1.
"""

# (module whose global is called, name): every entry of detection and parsing
ENTRIES = [
    (detect, "read_feedback"), (arf, "_report_of"), (arf, "_fields_of"), (arf, "_Parts"),
    (detect, "looks_like_complaint"), (parse, "parse_arf"),
    (detect, "find_report_mail"), (reports, "_report_parts"), (parse, "parse_report_mail"),
    (detect, "looks_like_bounce"), (extract, "formats"), (parse, "parse_bounce"), (extract, "_flufl_events"),
    (detect, "is_auto_reply"),
]


def _counting(calls: collections.Counter, name: str, fn):
    if isinstance(fn, type):  # a class: count its instances
        class Counted(fn):  # type: ignore[misc, valid-type]
            __slots__ = ()

            def __init__(self, *args, **kw):
                calls[name] += 1
                super().__init__(*args, **kw)
        return Counted

    @functools.wraps(fn)
    def counted(*args, **kw):
        calls[name] += 1
        return fn(*args, **kw)
    return counted


@pytest.fixture
def calls(monkeypatch) -> collections.Counter:
    counter: collections.Counter = collections.Counter()
    for module, name in ENTRIES:
        if name == "formats":  # the bounce detector's marker search, reached as formats.has_marker
            monkeypatch.setattr(formats, "has_marker", _counting(counter, "has_marker", formats.has_marker))
            continue
        monkeypatch.setattr(module, name, _counting(counter, name, getattr(module, name)))
    return counter


@pytest.mark.parametrize("rel, kind, must_run", [
    (QMAIL, "bounce",  # text only: found by the bounce detector, not by its structure
     {"find_report_mail", "_report_parts", "looks_like_complaint", "looks_like_bounce", "parse_bounce"}),
    ("bounces/exim-mailbox-full.eml", "bounce", {"parse_bounce"}),  # a delivery-status part: by its structure
    ("complaints/generic-arf.eml", "complaint", {"read_feedback", "_report_of", "_fields_of", "_Parts", "parse_arf"}),
    ("dmarc/google-aggregate-mail.eml", "dmarc_aggregate", {"find_report_mail", "_report_parts", "parse_report_mail"}),
    ("autoreply/exchange-out-of-office.eml", "auto_reply",
     {"find_report_mail", "looks_like_complaint", "looks_like_bounce", "is_auto_reply"}),
])
def test_each_detector_and_parser_runs_once_per_message(calls, rel, kind, must_run):
    result = parse_bytes(rel if isinstance(rel, bytes) else (SAMPLES / rel).read_bytes())
    assert result.kind == kind and result.error is None
    assert {name for name, n in calls.items() if n > 1} == set(), dict(calls)
    assert must_run <= set(calls), (must_run - set(calls), dict(calls))


def test_a_detection_hands_its_parser_what_it_read():
    from ingest.message import load_message

    arf_mail = load_message((SAMPLES / "complaints/generic-arf.eml").read_bytes())
    found = detect.detect(arf_mail)
    assert found.kind == "complaint" and found.feedback.fields and found.feedback.feedback_type == "abuse"
    report = load_message((SAMPLES / "dmarc/google-aggregate-mail.eml").read_bytes())
    found = detect.detect(report)
    assert found.kind == "dmarc_aggregate" and len(found.report_parts) == 1
