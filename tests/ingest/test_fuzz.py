"""Hostile input (issue 17): 2,000 mutated real messages and reports through the real parse path.

bench/fuzz.py makes them from a fixed seed (bench/fuzz_inputs.py: byte flips, truncation, broken
boundaries, deep nesting, charset and encoding lies, corrupt archives, long lines...) and
parses each with `parse_bytes`, timing the parse alone with `time.process_time`. No input may
end in an internal error (a reason naming a Python exception or the parser's catch-all), and
none may cost more than 50 ms of CPU per 100 KB (an input under 100 KB counts as 100 KB).
A failure names the input: `python bench/fuzz.py 17 1 --start INDEX --save DIR` writes it.
Below, each cause of an internal error or a stall the fuzzer found, as a plain input.
"""
from __future__ import annotations

import gzip
import io
import time
import zipfile
from pathlib import Path

import pytest

from bench import fuzz
from ingest.config import IngestConfig
from ingest.message import load_message, part_text
from ingest.parse import parse_bytes

SEED = 17
COUNT = 2000
LIMIT_MS = 50.0


@pytest.fixture(scope="module")
def fuzzed():
    total = fuzz.run(SEED, COUNT, jobs=1, limit_ms=LIMIT_MS, timeout=5.0)
    return fuzz.report(SEED, total, 0.0, 1, LIMIT_MS)


def _inputs(rows) -> str:
    return "\n".join(f"  bench/fuzz.py {SEED} 1 --start {r['index']}: {r.get('cause') or r.get('ms_per_100kb')} "
                     f"({'; '.join(r.get('recipe') or r.get('shape'))})" for r in rows)


def test_every_input_was_made_and_parsed(fuzzed):
    assert fuzzed["inputs"] == COUNT
    assert fuzzed["bytes"] > COUNT * 1000


def test_no_input_ends_in_an_internal_error(fuzzed):
    internal = [c for c in fuzzed["causes"] if not c["cause"].startswith("flufl.bounce detector")]
    assert fuzzed["internal_errors"] == 0, "internal errors:\n" + _inputs(internal)


def test_no_input_is_slower_than_50_ms_per_100_kb(fuzzed):
    assert fuzzed["over_limit"] == 0, (f"{fuzzed['over_limit']} inputs over {LIMIT_MS:g} ms per 100 KB:\n"
                                       + _inputs(fuzzed["slow_inputs"]))


# --- each cause the fuzzer found, as a plain input ----------------------------------------

SAMPLES = Path(__file__).resolve().parents[2] / "sample_reports"
BOUNCE = (SAMPLES / "bounces" / "postfix-user-unknown.eml").read_bytes()
FAILURE = (SAMPLES / "dmarc" / "dmarc-failure-report.eml").read_bytes()
AGGREGATE = gzip.decompress(
    (SAMPLES / "dmarc" / "enterprise.protection.outlook.com!example.com!1704758400!1704844800.xml.gz").read_bytes())
# the sample's first record alone: with several, parsedmarc leaves out one it cannot read
ONE_RECORD = AGGREGATE[:AGGREGATE.index(b"</record>") + 9] + b"\n</feedback>\n"
TLS = (SAMPLES / "tls" / "microsoft-tlsrpt-example.com-2024-01-09.json").read_bytes()


def growth(make, n: int, detail: bool) -> float:
    """How many times longer an input 8 times larger takes to read, the fastest of five
    parses each once the readers are imported: about 8 when the reading is linear (less
    where the fixed cost counts, up to 16 here where memory does), 64 when it is quadratic. A ratio of one run, so a
    slow shared machine slows both sides alike, and no bound on the seconds themselves."""
    parse_bytes(FAILURE, IngestConfig(), detail=detail)

    def fastest(raw: bytes) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            assert reason(raw, detail) is None
            times.append(time.perf_counter() - started)
        return min(times)

    return fastest(make(8 * n)) / fastest(make(n))


def reason(raw: bytes, detail: bool = True) -> str | None:
    result = parse_bytes(raw, IngestConfig(), detail=detail)
    assert not (result.error and fuzz.INTERNAL.search(result.error)), result.error
    return result.error


def test_8_bit_headers_are_text_for_every_reader():
    raw = BOUNCE.replace(b"From: ", b"From: \xff\xfe caf\xc3\xa9 ", 1).replace(b"Subject: ", b"Subject: \xe9t\xe9 ", 1)
    msg = load_message(raw)
    assert all(isinstance(v, str) for v in msg.values())
    assert "café" in msg["From"] and "\ufffd" in msg["From"]
    assert reason(raw) is None
    assert reason(raw.replace(b"\nFrom: ", b"\nX-From: ", 1)) is None  # flufl's detectors too


@pytest.mark.parametrize("word", [b"=?utf-8?B?####?=", b"=?\xff?q?a?=", b"=?undefined?B?YWJj?=", b"=?utf-8?b?YWJj"])
def test_encoded_words_that_do_not_decode_read_as_written(word):
    assert reason(BOUNCE.replace(b"Subject: ", b"Subject: " + word + b" ", 1)) is None


@pytest.mark.parametrize("charset", [b"utf8\x00", b"idna", b"undefined", b"rot13", b"x-unknown"])
def test_a_charset_that_is_no_text_codec_reads_as_utf_8(charset):
    raw = BOUNCE.replace(b'charset=us-ascii', b'charset="' + charset + b'"').replace(b"user", b"\xe9user", 1)
    assert reason(raw) in (None, "bounce names no recipient")


def test_rfc_2231_parameters_with_a_charset_that_is_no_codec():
    msg = load_message(b"Content-Type: text/plain; charset*=utf8%00''x; name*=utf8\x00''%ff\n"
                       b"Content-Disposition: attachment; filename*=idna''%ff%fe\n\nhi \xff\n")
    assert msg.get_filename() == "\xff\xfe"  # as the email package reads an unknown charset
    assert msg.get_content_charset() is None
    assert msg.get_payload() == "hi \ufffd\n"


def test_mime_nesting_is_refused_as_soon_as_it_is_too_deep():
    nested = b"".join(b'Content-Type: multipart/mixed; boundary="n%d"\n\n--n%d\n' % (d, d) for d in range(3000))
    started = time.process_time()
    assert reason(b"From: a@example.com\nMIME-Version: 1.0\n" + nested + b"x\n") == \
        "MIME nesting deeper than 25 levels"
    assert time.process_time() - started < 0.05


def test_an_ses_notification_with_a_numeric_timestamp():
    raw = (b"From: MAILER-DAEMON@amazonses.com\nSubject: Amazon SES bounce\nContent-Type: text/plain\n\n"
           b'{"notificationType": "Bounce", "bounce": {"bounceType": "Permanent", "timestamp": 1700000000, '
           b'"bouncedRecipients": [{"emailAddress": "u@example.com", "status": "5.1.1"}]}}\n')
    result = parse_bytes(raw, IngestConfig())
    assert result.error is None and result.events[0]["recipient"] == "u@example.com"


@pytest.mark.parametrize("xml, why", [
    (b'<feedback>{"org_name": "x"}</feedback>', "the report has no <report_metadata>"),
    (AGGREGATE.replace(b"<begin>1704758400", b"<begin>99999999999999999999"), "<begin> is out of range"),
    (ONE_RECORD.replace(b"<count>922", b"<count>abc"), "<count> is not a number: 'abc'"),
    (ONE_RECORD.replace(b"<report_id>", b"<report_id><x/>", 1), "<report_id> holds elements, where text is expected"),
    (ONE_RECORD + b"<!-- -->", None),
])
def test_an_aggregate_report_parsedmarc_cannot_read_is_described(xml, why):
    if why is None:
        assert reason(xml) is None  # the report the others are made from is read
    else:
        assert why in reason(xml)


@pytest.mark.parametrize("old, new, why", [
    (b'"policy-type": "sts"', b'"policy-type": null', "policy 1's \"policy\"'s \"policy-type\" is null"),
    (b'"total-successful-session-count": ', b'"total-successful-session-count": "many", "x": ',
     "is not a number: 'many'"),
    (b'"policies": [', b'"policies": ["<policy/>", ', "policy 1 is a string, where an object is expected"),
])
def test_a_tls_report_of_the_wrong_shape_is_described(old, new, why):
    assert old in TLS
    assert why in reason(TLS.replace(old, new, 1))


def test_a_failure_report_parsedmarc_cannot_read_is_described():
    raw = FAILURE.replace(b'From: "Example Billing"', b'Subject: one\nSubject: two\nFrom: "Example Billing"', 1)
    raw = raw.replace(b"Source-IP: 203.0.113.66", b"Source-IP: 203.0.113.66\nSource-IP: 203.0.113.67")
    for detail in (True, False):
        assert reason(raw, detail) in (None, "DMARC failure report not readable: its report has 2 Source-Ip fields, "
                                             "where one is expected")


def test_a_long_non_ascii_header_in_a_failure_report_is_read_in_linear_time():
    def make(n: int) -> bytes:
        return FAILURE.replace(b"To: judy@example.net", b"To: judy@example.net\nSubject: " + "é ".encode() * n, 1)
    for detail in (True, False):
        assert growth(make, 40000, detail) < 32


def test_a_failure_report_with_thousands_of_header_fields_is_read_in_linear_time():
    def make(n: int) -> bytes:
        junk = b"".join(b"X-Junk-%d: %d\n" % (i, i) for i in range(n))
        return FAILURE.replace(b"To: judy@example.net", b"To: judy@example.net\n" + junk.rstrip(b"\n"), 1)
    for detail in (True, False):
        assert growth(make, 1000, detail) < 32


def test_a_zip_that_needs_a_later_version():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("report.xml", AGGREGATE)
    data = bytearray(buf.getvalue())
    at = data.find(b"PK\x01\x02")
    data[at + 6] = 182  # "version needed to extract": 18.2
    assert reason(bytes(data)) == "zip archive needs a feature that cannot be read (zip file version 18.2)"


@pytest.mark.parametrize("charset", [b'"utf8\x00"', b'"\xff"', b"x-unknown", b"idna", b"*=utf-8''x"])
def test_a_returned_message_is_text_whatever_its_charset_says(charset):
    raw = (b"From: a@example.com\nContent-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n"
           b"From: x@example.com\nSubject: caf\xc3\xa9\nContent-Type: text/plain; charset"
           + (charset if charset.startswith(b"*") else b"=" + charset) + b"\n\nh\xe9llo\n--b--\n")
    text = part_text(load_message(raw).get_payload()[0])
    assert "Subject: café\n" in text and text.endswith("\n\nh\ufffdllo")


def test_parsedmarcs_key_error_is_not_a_reason():
    """parsedmarc says "Unable to parse message with subject "None": 'received-date'" when a
    field is missing (a KeyError's text): the reason must describe the input instead."""
    from ingest.message import load_message
    from ingest.parsers.report_shape import describe_failure

    msg = load_message(b"From: a@example.org\nSubject: report\nContent-Type: text/plain\n\nnothing\n")
    why = describe_failure(msg, 'Unable to parse message with subject "None": \'received-date\'')
    assert "received-date'" not in why and "Unable to parse" not in why and why


def test_a_boundary_that_cannot_be_written_again_is_given_as_it_came():
    from ingest.headers import for_readers
    from ingest.message import load_message

    raw = (b'Content-Type: multipart/report; boundary="\xff\xfe"\nSubject: ' + b'\xc3\xa9' * 3000
           + b"\n\n--\xff\xfe\nContent-Type: text/plain\n\nx\n--\xff\xfe--\n")
    out = for_readers(raw, load_message(raw))  # it raised UnicodeEncodeError writing the boundary
    assert isinstance(out, bytes) and b"x" in out


def test_an_aggregate_report_spanning_millennia_is_refused_before_parsedmarc_walks_it():
    """<end> a few digits longer (4,800 years): parsedmarc buckets the range day by day (3 s)."""
    from ingest.config import IngestConfig
    from ingest.parse import parse_bytes

    xml = (b'<?xml version="1.0"?><feedback><report_metadata><org_name>x</org_name><email>a@x.example</email>'
           b"<report_id>1</report_id><date_range><begin>1538413632</begin><end>153841363222</end></date_range>"
           b"</report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>"
           b"<record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated><disposition>none"
           b"</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>"
           b"example.com</header_from></identifiers><auth_results></auth_results></record></feedback>")
    result = parse_bytes(xml, IngestConfig())
    assert "spans 1,762,765 days" in (result.error or ""), result.error
