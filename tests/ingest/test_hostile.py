"""Hostile and broken input: every one gets a one-line reason, never a crash or a hang."""
from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from ingest.config import IngestConfig
from ingest.parse import parse_bytes
from ingest.parsers.safety import UnsafeReport, check_xml, gunzip_bounded, unpack, unzip_bounded

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_reports"
SMALL = IngestConfig(max_decompressed_bytes=1024 * 1024)  # 1 MB cap: a few KB of bomb exceeds it
XML_HEAD = b'<?xml version="1.0"?><feedback>'


def gzip_bomb(size=16 * 1024 * 1024) -> bytes:
    """Gzip of `size` bytes of XML whitespace, built in chunks (a few KB per MB)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    out = [comp.compress(XML_HEAD)]
    block = b" " * (1024 * 1024)
    for _ in range(size // len(block)):
        out.append(comp.compress(block))
    out.append(comp.flush())
    return b"".join(out)


def zip_bomb(size=16 * 1024 * 1024) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("report.xml", "w", force_zip64=True) as member:
            member.write(XML_HEAD)
            block = b" " * (1024 * 1024)
            for _ in range(size // len(block)):
                member.write(block)
    return buf.getvalue()


def lying_zip(size=16 * 1024 * 1024, claim=1000) -> bytes:
    """A zip bomb whose headers declare a tiny member: only the actual size can catch it."""
    data = bytearray(zip_bomb(size))
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = data.find(sig)
        while i != -1:
            size_field = struct.unpack_from("<I", data, i + offset)[0]
            if size_field != 0xFFFFFFFF:
                struct.pack_into("<I", data, i + offset, claim)
            i = data.find(sig, i + 4)
    # zip64 extra fields carry the real size; rewrite them too
    j = data.find(b"\x01\x00", 30)
    while j != -1 and j < len(data) - 12:
        if struct.unpack_from("<H", data, j + 2)[0] in (16, 24, 28):
            struct.pack_into("<Q", data, j + 4, claim)
            break
        j = data.find(b"\x01\x00", j + 1)
    return bytes(data)


def as_mail(ctype: str, name: str, data: bytes) -> bytes:
    import base64
    return (f"From: dmarc@example.org\nTo: dmarc@example.com\nSubject: Report domain: example.com\n"
            f"MIME-Version: 1.0\nContent-Type: {ctype}; name=\"{name}\"\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\nContent-Transfer-Encoding: base64\n\n"
            + base64.encodebytes(data).decode()).encode()


def one_line(r):
    assert r.error and "\n" not in r.error, r.error
    return r.error


# --- the bombs ---------------------------------------------------------------------

def test_gzip_bomb_is_refused():
    bomb = gzip_bomb()
    assert len(bomb) < 64 * 1024
    r = parse_bytes(bomb, SMALL)
    assert "expands past the 1.0 MB limit" in one_line(r)
    assert "decompression bomb" in r.error


def test_gzip_bomb_in_a_mail_is_refused():
    r = parse_bytes(as_mail("application/gzip", "a!example.com!1!2.xml.gz", gzip_bomb()), SMALL)
    assert r.kind == "dmarc_aggregate"
    assert "expands past the 1.0 MB limit" in one_line(r)


def test_zip_bomb_declared_size_is_refused():
    bomb = zip_bomb()
    assert len(bomb) < 64 * 1024
    r = parse_bytes(bomb, SMALL)
    assert "declares 16.0 MB, above the 1.0 MB limit" in one_line(r)


def test_zip_bomb_with_lying_sizes_is_refused():
    bomb = lying_zip()
    r = parse_bytes(bomb, SMALL)
    reason = one_line(r)
    assert "zip" in reason and ("unreadable" in reason or "expands past" in reason), reason


def test_gunzip_and_unzip_stop_at_the_cap():
    with pytest.raises(UnsafeReport, match="expands past"):
        gunzip_bounded(gzip_bomb(4 * 1024 * 1024), 1024 * 1024)
    with pytest.raises(UnsafeReport, match="declares"):
        unzip_bounded(zip_bomb(4 * 1024 * 1024), 1024 * 1024)
    assert unpack(gzip.compress(b"<feedback/>"), 100) == b"<feedback/>"
    assert gunzip_bounded(gzip.compress(b"a") + gzip.compress(b"b"), 10) == b"ab"  # multi-member


def test_default_cap_memory_stays_under_256_mb(tmp_path):
    """A bomb bigger than the default 64 MB cap, parsed in a fresh process: peak RSS < 256 MB."""
    path = tmp_path / "bomb.xml.gz"
    path.write_bytes(gzip_bomb(200 * 1024 * 1024))
    # VmHWM, not ru_maxrss: Linux carries the parent's peak across exec into ru_maxrss,
    # so a large pytest process would be measured instead of this child.
    code = ("from ingest.parse import parse_bytes; "
            f"r = parse_bytes(open({str(path)!r}, 'rb').read()); print(r.error); "
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True, timeout=60)
    error, maxrss_kb = out.stdout.strip().splitlines()
    assert "expands past the 64.0 MB limit" in error
    assert int(maxrss_kb) < 256 * 1024


# --- XML tricks --------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<feedback><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feedback><report_metadata><org_name>&xxe;</org_name></report_metadata></feedback>
"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, XXE, b'<?xml version="1.0"?><!DOCTYPE feedback><feedback/>'])
def test_dtd_tricks_are_refused(xml):
    for raw in (xml, gzip.compress(xml), as_mail("text/xml", "r.xml", xml)):
        r = parse_bytes(raw)
        assert "declares a DTD" in one_line(r)
        assert "root:" not in r.error


def test_check_xml():
    check_xml(b"<feedback><a/></feedback>")
    with pytest.raises(UnsafeReport):
        check_xml("<!ENTITY x 'y'>")


# --- broken messages ----------------------------------------------------------------

def nested(depth: int) -> bytes:
    out = b"From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b0\n\n"
    for i in range(depth):
        out += b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i, i + 1)
    return out + b"--b%d\nContent-Type: text/plain\n\nhi\n" % depth


def nested_rfc822(depth: int) -> bytes:
    out = b""
    for _ in range(depth):
        out += b"From: a@example.org\nMIME-Version: 1.0\nContent-Type: message/rfc822\n\n"
    return out + b"From: b@example.org\n\nhi\n"


ARF_SAMPLE = (SAMPLES / "complaints/generic-arf.eml").read_bytes()
CASES = {
    "empty": (b"", "empty input"),
    "whitespace": (b" \r\n\t\n", "empty input"),
    "truncated": (ARF_SAMPLE[:400], None),
    "non-utf8": (b"From: a@example.org\nSubject: \xff\xfe\xfa\n\n\xc3\x28 \xff body\n", "not a feedback message"),
    "undecodable-base64": (as_mail("application/gzip", "r.xml.gz", b"")[:-1] + b"\n!!!!@@@@####\n",
                           "cannot be decoded"),
    "nested-multipart": (nested(200), "nesting deeper"),
    "nested-rfc822": (nested_rfc822(300), None),
    "very-deep-multipart": (nested(5000), None),
    "not-a-report": (b"From: a@example.org\nTo: fbl@example.com\nSubject: lunch\n\nLunch?\n",
                     "not a feedback message"),
    "binary": (bytes(range(256)) * 8, "not a DMARC aggregate (XML) or SMTP TLS (JSON) report"),
    "truncated-gzip": (gzip.compress(b"<feedback>" + b"x" * 5000)[:40], "truncated"),
    "corrupt-gzip": (b"\x1f\x8b\x08\x00" + b"\x00" * 40, "gzip"),
    "truncated-zip": (zip_bomb(1024 * 1024)[:100], "zip archive is unreadable"),
    "deep-json": (b'{"organization-name": ' + b"[" * 100000 + b"]" * 100000 + b"}", "not a valid SMTP TLS report"),
    "html": (b"<html><body>hello</body></html>", "not a valid DMARC aggregate report"),
    "many-lines": (b"From: a@example.org\nSubject: x\n\n" + b"\n" * 2_000_000, "lines"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_hostile_input_gets_a_reason(name):
    raw, reason = CASES[name]
    t0 = time.perf_counter()
    r = parse_bytes(raw)
    assert time.perf_counter() - t0 < 10
    if reason is not None:
        assert reason in one_line(r)
    else:  # any clear answer will do, as long as it is an answer
        assert r.kind in ("unknown", "complaint", "bounce", "auto_reply") and (r.error is None or "\n" not in r.error)
    json.dumps(r.as_json("x"))  # the contract is printable


def test_50_mb_message_is_refused_quickly():
    raw = b"From: a@example.org\nSubject: big\n\n" + b"x" * (50 * 1024 * 1024)
    t0 = time.perf_counter()
    r = parse_bytes(raw)
    assert time.perf_counter() - t0 < 2
    assert "above the 25 MB limit" in one_line(r)


@pytest.mark.parametrize("ending", [b"\r\n", b"\r"])
def test_line_endings_do_not_change_the_answer(ending):
    for rel in ("complaints/generic-arf.eml", "dmarc/dmarc-failure-report.eml", "dmarc/google-aggregate-mail.eml",
                "tls/google-tls-report-mail.eml", "autoreply/exchange-out-of-office.eml"):
        raw = (SAMPLES / rel).read_bytes()
        want = parse_bytes(raw).as_json()
        assert parse_bytes(raw.replace(b"\n", ending)).as_json() == want, rel
