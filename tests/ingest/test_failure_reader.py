"""ingest.parsers.failure gives the summary parsedmarc's report gives, or leaves the report to it."""
import re
import warnings

import pytest

from ingest.message import normalise_newlines
from ingest.parse import parse_bytes
from ingest.parsers import failure
from ingest.parsers.reports import _Parsedmarc, failure_summary
from tests.conftest import CORPUS, SAMPLES


def arf_reports():
    """Every ARF report of the corpus and the samples (abuse reports read the same way)."""
    files = [p for p in sorted(CORPUS.rglob("*.eml")) + sorted(SAMPLES.rglob("*.eml"))
             if b"feedback-report" in p.read_bytes().lower()]
    return [(p.name, normalise_newlines(p.read_bytes())) for p in files]


def parsedmarc_summary(raw):
    pm, cfg = _Parsedmarc.get(True)
    try:
        parsed = pm.parse_report_email(raw, config=cfg)
    except pm.ParserError:
        return None
    return failure_summary(parsed["report"]) if parsed.get("report_type") == "failure" else None


def field(raw, name, value, last=False):
    """`raw` with the first (or last) field `name` of any part set to `value`, or removed when None."""
    found = list(re.finditer(rb"^" + re.escape(name.encode()) + rb":[^\n]*\n", raw, re.M | re.I))
    if not found:
        return raw
    m = found[-1] if last else found[0]
    return raw[:m.start()] + (b"" if value is None else f"{name}: {value}\n".encode()) + raw[m.end():]


VARIATIONS = [
    ("Source-IP", "192.0.2.1 (the sender)"), ("Source-IP", "01.2.3.4"), ("Source-IP", "2001:DB8::1"),
    ("Source-IP", "2001:db8::1"), ("Source-IP", "::ffff:192.0.2.1"), ("Source-IP", "unknown"), ("Source-IP", None),
    ("Arrival-Date", None), ("Arrival-Date", "Thu, 8 Mar 2005 17:00:00 +0200 (EET)"), ("Arrival-Date", "yesterday"),
    ("Arrival-Date", "2024-01-11T07:44:58Z"), ("Date", None), ("Date", "not a date"),
    ("Reported-Domain", None), ("Feedback-Type", None), ("Feedback-Type", "Auth-Failure"),
    ("Auth-Failure", None), ("Auth-Failure", "dkim, spf"), ("Delivery-Result", "Reject"),
    ("Delivery-Result", "unknown"), ("Delivery-Result", None), ("Original-Mail-From", "<Someone@Example.COM>"),
    ("Original-Rcpt-To", None), ("Subject", "=?utf-8?q?caf=C3=A9?= report"), ("From", "Name <a@b.example>"),
    ("From", ""), ("From", "a@b.example, c@d.example"), ("From", "=?utf-8?b?w6k=?= <e@x.example>"),
]


def variants():
    for name, raw in arf_reports():
        yield name, raw
        yield name + " crlf-normalised twice", normalise_newlines(raw.replace(b"\n", b"\r\n"))
        for field_name, value in VARIATIONS:
            for last in (False, True):  # the report's own field, or the returned message's
                changed = field(raw, field_name, value, last)
                if changed != raw:
                    yield f"{name} {field_name}={value!r}{' (last)' if last else ''}", changed
        yield name + " with an aggregate report attached", raw.replace(
            b"Content-Type: message/feedback-report",
            b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
            b"PGZlZWRiYWNrPjwvZmVlZGJhY2s+\n\n--x\nContent-Type: message/feedback-report", 1)


@pytest.mark.parametrize("name,raw", list(variants()), ids=lambda x: x if isinstance(x, str) else None)
def test_the_summary_is_parsedmarcs_or_none(name, raw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = parsedmarc_summary(raw)
        got = failure.read_failure(raw)
    assert got is None or failure_summary(got) == want


def test_the_corpus_failure_reports_are_read_without_parsedmarc():
    read = [name for name, raw in arf_reports() if failure.read_failure(raw) is not None]
    assert {"arf-18.eml", "arf-19.eml", "arf-20.eml", "dmarc-failure-report.eml"} <= set(read)


def test_parse_without_detail_gives_the_same_result_but_the_detail():
    for name, raw in arf_reports():
        full, summary = parse_bytes(raw), parse_bytes(raw, detail=False)
        assert summary.as_json(name) == full.as_json(name)
        if summary.kind == "dmarc_failure" and failure.read_failure(raw) is not None:
            assert summary.detail is None and full.detail is not None


def test_another_parsedmarc_release_is_left_to_parsedmarc(monkeypatch):
    raw = (SAMPLES / "dmarc" / "dmarc-failure-report.eml").read_bytes()
    monkeypatch.setattr(failure, "_mirrors", False)
    assert failure.read_failure(raw) is None
