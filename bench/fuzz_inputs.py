"""The inputs of bench/fuzz.py: real messages and reports, mutated deterministically.

Input I of seed S is made from the base files (the shared corpus, sample_reports/ and the
test data) by a `random.Random` seeded with "S/I" alone, so any input can be made again from
its two numbers and the same files. Each input is one base file, sometimes with the report it
carries mutated inside its gzip/zip/base64 wrapping, then one to three mutations: byte flips,
truncation, repeated chunks, broken MIME boundaries, deep nesting, spliced messages, junk
headers, very long lines (up to ~1 MB), header folding tricks, charset and transfer-encoding
lies, corrupt or junk gzip/zip attachments, XML in JSON and JSON in XML, NUL bytes, 8-bit
headers, RFC 2047 garbage, absurd field values. `Generator.make` also says, in words, what
was done (the input's shape).
"""
from __future__ import annotations

import base64
import gzip
import io
import json
import os
import random
import re
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("POSTWATCH_CORPUS", ROOT.parent / "shared" / "corpus"))
SOURCES = (CORPUS, ROOT / "sample_reports", ROOT / "tests" / "ingest" / "data")
NOT_INPUTS = {"README.md", "manifest.json", "expected.json"}
MAX_INPUT = 4 * 1024 * 1024  # what a mutation may grow an input to


def source_files(sources=SOURCES) -> list[Path]:
    """Every input file of the sources that exist, in a fixed order."""
    files = []
    for top in sources:
        if top.is_dir():
            files += sorted(p for p in top.rglob("*") if p.is_file() and p.name not in NOT_INPUTS
                            and "__pycache__" not in p.parts)
    return files


class Generator:
    """Makes input I of seed S from the base files; nothing but the base files is kept."""

    def __init__(self, files: list[Path]):
        if not files:
            raise SystemExit("fuzz: no input files found (set POSTWATCH_CORPUS to the shared corpus)")
        self.names = [str(p.relative_to(ROOT.parent)) if p.is_relative_to(ROOT.parent) else str(p)
                      for p in files]
        self.bases = [p.read_bytes() for p in files]
        self.messages = [i for i, b in enumerate(self.bases) if _is_message(b)]
        self.reports = [i for i, b in enumerate(self.bases) if not _is_message(b) or _attachment(b)]

    def make(self, seed: int, index: int) -> tuple[bytes, list[str]]:
        """Input `index` of `seed` and the recipe it was made by (its shape, in words)."""
        rng = random.Random(f"{seed}/{index}")
        base = rng.randrange(len(self.bases))
        raw = self.bases[base]
        recipe = [self.names[base]]
        if rng.random() < 0.3:
            raw, what = _inner(rng, raw, self)
            if what:
                recipe.append(what)
        for _ in range(1 + (rng.random() < 0.5) + (rng.random() < 0.25)):
            name, mutate = _pick(rng)
            try:
                raw, what = mutate(rng, raw, self)
            except _Skip:
                continue
            recipe.append(what or name)
            if len(raw) > MAX_INPUT:
                raw = raw[:MAX_INPUT]
        return raw, recipe

    def other(self, rng: random.Random) -> bytes:
        return self.bases[rng.randrange(len(self.bases))]

    def other_message(self, rng: random.Random) -> bytes:
        return self.bases[rng.choice(self.messages)]

    def report_payload(self, rng: random.Random) -> tuple[bytes, str]:
        """The XML or JSON of a report (unpacked), and its name."""
        if not self.reports:
            raise _Skip
        i = rng.choice(self.reports)
        data = self.bases[i]
        if _is_message(data):
            found = _attachment(data)
            data = found[1] if found else data
        return _unpack(data), self.names[i]


class _Skip(Exception):
    """The mutation does not apply to this input."""


def _is_message(raw: bytes) -> bool:
    head = raw.lstrip()[:1]
    return head not in (b"{", b"[", b"<") and raw[:2] != b"\x1f\x8b" and raw[:4] != b"PK\x03\x04"


_B64_BLOCK = re.compile(rb"(?:\r?\n)((?:[A-Za-z0-9+/=]{20,}\r?\n){2,}[A-Za-z0-9+/=]*)")


def _attachment(raw: bytes):
    """The first base64 block of a message that holds a report (gzip, zip, XML or JSON):
    (its span, its decoded bytes), or None."""
    for m in _B64_BLOCK.finditer(raw):
        try:
            data = base64.b64decode(re.sub(rb"\s+", b"", m.group(1)), validate=False)
        except ValueError:
            continue
        if data[:2] == b"\x1f\x8b" or data[:4] == b"PK\x03\x04" or data.lstrip()[:1] in (b"<", b"{"):
            return m.span(1), data
    return None


def _unpack(data: bytes) -> bytes:
    try:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                return z.read(z.namelist()[0])
    except Exception:  # noqa: BLE001 - a broken archive among the base files is mutated as it is
        pass
    return data


def _pack(rng: random.Random, data: bytes, like: bytes) -> bytes:
    """`data` packed the way `like` was (gzip, zip or plain)."""
    if like[:2] == b"\x1f\x8b":
        return gzip.compress(data, 1, mtime=0)
    if like[:4] == b"PK\x03\x04":
        return _zip([("report.xml", data)])
    return data


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            z.writestr(info, data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data)


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """Header block, the blank line, body."""
    for sep in (b"\n\n", b"\r\n\r\n"):
        i = raw.find(sep)
        if i >= 0:
            return raw[:i], sep, raw[i + len(sep):]
    return raw, b"", b""


def _insert(raw: bytes, pos: int, data: bytes) -> bytes:
    return raw[:pos] + data + raw[pos:]


def _line_start(raw: bytes, pos: int) -> int:
    return raw.rfind(b"\n", 0, pos) + 1


def _rand_bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


# -- mutations: each takes (rng, raw, generator) and returns (raw, what it did) ------------------

def byte_flips(rng, raw, gen):
    if not raw:
        raise _Skip
    data = bytearray(raw)
    n = rng.choice((1, 2, 4, 16, 64, 256))
    for _ in range(n):
        i = rng.randrange(len(data))
        data[i] = rng.randrange(256) if rng.random() < 0.5 else data[i] ^ (1 << rng.randrange(8))
    return bytes(data), f"byte_flips({n})"


def truncate(rng, raw, gen):
    if len(raw) < 2:
        raise _Skip
    where = rng.random()
    if where < 0.3:
        cut = rng.randrange(1, min(len(raw), 400))  # inside the header
    elif where < 0.6:
        cut = len(raw) - rng.randrange(1, min(len(raw), 200))  # the last lines
    else:
        cut = rng.randrange(1, len(raw))
    return raw[:cut], f"truncate({cut} of {len(raw)})"


def repeat_chunk(rng, raw, gen):
    if not raw:
        raise _Skip
    start = rng.randrange(len(raw))
    size = rng.choice((1, 2, 16, 80, 512, 4096))
    chunk = raw[start:start + size]
    times = rng.choice((2, 10, 100, 1000, 10000))
    times = max(2, min(times, (1 << 20) // max(1, len(chunk))))
    return _insert(raw, start, chunk * times), f"repeat_chunk({len(chunk)} bytes x {times})"


_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^";\r\n]+)"?', re.I)


def boundaries(rng, raw, gen):
    found = _BOUNDARY.findall(raw)
    if not found:
        return _wrap_multipart(rng, raw, b"b" + str(rng.randrange(1000)).encode(), close=False), \
            "multipart never closed"
    b = rng.choice(found)
    trick = rng.randrange(9)
    if trick == 0:
        return raw.replace(b"--" + b + b"--", b""), "boundary never closed"
    if trick == 1:
        return re.sub(rb"(?m)^--" + re.escape(b) + rb"(--)?[ \t]*$", b"", raw), "boundary lines removed"
    if trick == 2:
        return raw.replace(b"boundary=\"" + b, b"boundary=\"x" + b, 1).replace(b"boundary=" + b, b"boundary=x" + b, 1), \
            "boundary in header differs from body"
    if trick == 3:
        return _BOUNDARY.sub(b'boundary=""', raw, count=1), "empty boundary"
    if trick == 4:
        return _BOUNDARY.sub(b"", raw, count=1), "boundary parameter removed"
    if trick == 5:
        lines = list(re.finditer(rb"(?m)^--" + re.escape(b) + rb"[ \t]*$", raw))
        if not lines:
            raise _Skip
        at = rng.choice(lines).start()
        head, _, _ = _split(raw)
        pos = rng.randrange(len(head)) if head else 0
        return _insert(raw, _line_start(raw, pos), raw[at:at + len(b) + 3] + b"\n"), "delimiter in header"
    if trick == 6:
        long = (b * (2 + 2000 // max(1, len(b))))[:rng.choice((71, 200, 5000))]
        return raw.replace(b, long), f"boundary of {len(long)} characters"
    if trick == 7:
        odd = rng.choice((b"(.*)+", b"\\", b"--", b" ", b"a\x00b", b"\xff\xfe", b"=?utf-8?q?x?=", b"*"))
        return raw.replace(b, odd), f"boundary {odd!r}"
    # every part delimiter also used by a nested multipart
    others = [x for x in found if x != b]
    if not others:
        raise _Skip
    return raw.replace(others[0], b), "nested multiparts share a boundary"


def _wrap_multipart(rng, body: bytes, b: bytes, close: bool = True, ctype: bytes = b"multipart/mixed") -> bytes:
    out = (b"Content-Type: " + ctype + b'; boundary="' + b + b'"\n\n--' + b + b"\n"
           + body + b"\n")
    return out + (b"--" + b + b"--\n" if close else b"")


def deep_nesting(rng, raw, gen):
    depth = rng.choice((5, 24, 26, 60, 300, 3000))
    kind = rng.randrange(3)
    head, sep, body = _split(raw)
    inner = raw
    if kind == 0:  # multipart inside multipart
        opening = []
        closing = []
        for d in range(depth):
            b = b"n%d" % d
            opening.append(b'Content-Type: multipart/mixed; boundary="' + b + b'"\n\n--' + b + b"\n")
            closing.append(b"\n--" + b + b"--\n")
        close = rng.random() < 0.5
        nested = b"".join(opening) + inner + (b"".join(reversed(closing)) if close else b"")
        what = f"{depth} nested multiparts" + ("" if close else ", never closed")
    elif kind == 1:  # message/rfc822 inside message/rfc822
        nested = b"Content-Type: message/rfc822\n\n" * depth + inner
        what = f"{depth} nested message/rfc822"
    else:  # a report inside a report inside ... (multipart/report, delivery-status at each level)
        opening, closing = [], []
        for d in reversed(range(depth)):  # the outermost level first
            b = b"r%d" % d
            opening.append(b'Content-Type: multipart/report; report-type=delivery-status; boundary="' + b
                           + b'"\n\n--' + b + b"\nContent-Type: message/delivery-status\n\nFinal-Recipient: "
                           + b"rfc822; x" + str(d).encode() + b"@example.com\nAction: failed\nStatus: 5.1.1\n\n--"
                           + b + b"\nContent-Type: message/rfc822\n\n")
            closing.append(b"\n--" + b + b"--\n")
        nested = b"".join(opening) + inner + b"".join(reversed(closing))
        what = f"{depth} nested multipart/report"
    if len(nested) > MAX_INPUT:
        nested = nested[:MAX_INPUT]
    top = re.sub(rb"(?im)^(content-type|content-transfer-encoding|mime-version):.*\n(?:[ \t].*\n)*", b"",
                 head + b"\n")
    return top + b"MIME-Version: 1.0\n" + nested, what


def splice(rng, raw, gen):
    other = gen.other(rng)
    trick = rng.randrange(4)
    if trick == 0 and raw and other:
        a, b = rng.randrange(len(raw)), rng.randrange(len(other))
        return raw[:a] + other[b:], "head of one input, tail of another"
    if trick == 1:
        return raw + b"\nFrom MAILER-DAEMON Mon Jan  1 00:00:00 2024\n" + gen.other_message(rng), \
            "two messages, mbox-style"
    if trick == 2:  # the other one attached as the returned message
        head, sep, body = _split(raw)
        b = b"splice%d" % rng.randrange(1000)
        head = re.sub(rb"(?im)^content-type:.*\n(?:[ \t].*\n)*", b"", head + b"\n").rstrip(b"\n")
        return (head + b'\nContent-Type: multipart/report; report-type=delivery-status; boundary="' + b
                + b'"\n\n--' + b + b"\nContent-Type: text/plain\n\n" + body + b"\n--" + b
                + b"\nContent-Type: message/rfc822\n\n" + other + b"\n--" + b + b"--\n"), \
            "another input attached"
    pos = rng.randrange(len(raw) + 1)
    return _insert(raw, pos, other), "another input inserted"


_JUNK_HEADERS = (
    b"X-Junk: " + b"x" * 10, b"no colon in this line", b": no name", b"Name With Spaces: v",
    b"Content-Type:", b"Content-Type: ;;;", b"Content-Type: multipart/report", b"Content-Type: text/",
    b"Content-Type: /plain", b"Content-Type: message/delivery-status; charset=\xff",
    b"Content-Type: multipart/mixed; boundary", b"Content-Type: text/plain; charset*=''",
    b"Content-Type: text/plain; name*0*=utf-8''%ff; name*1*=%fe; name*5=x",
    b"Content-Type: application/gzip; name=\"=?utf-8?b?AAAA?=\"",
    b"Content-Disposition: attachment; filename*=bogus''%zz%ff",
    b"Content-Transfer-Encoding:", b"MIME-Version: 99.x", b"From:", b"From: <<<@@@>>>", b"From: \"unclosed",
    b"To: undisclosed-recipients:;", b"Date: Mon, 99 Foo 99999 99:99:99 +9999", b"Date: 0",
    b"Message-ID: <" + b"<" * 50, b"Return-Path: <>", b"Return-Path: <bounces+" + b"=" * 60 + b"@x>",
    b"Subject: Report domain: " + b"\xff" * 8, b"Auto-Submitted: auto-replied; \x00",
    b"X-Failed-Recipients: ,,,,@,,,", b"Received: from [999.999.999.999] by ;", b"\x00: \x00",
    b"Feedback-Type: ", b"Delivered-To: bounces+t-@", b"Delivered-To: bounces+" + b"a=" * 40 + b"@x",
)


def junk_headers(rng, raw, gen):
    head, sep, body = _split(raw)
    n = rng.choice((1, 3, 10, 100, 3000))
    lines = [rng.choice(_JUNK_HEADERS) for _ in range(n)]
    if n >= 100:
        lines = [b"X-Many-%d: %d" % (i, i) for i in range(n)]
    where = rng.random()
    block = b"\n".join(lines) + b"\n"
    if where < 0.3:
        return block + raw, f"{n} junk header lines first"
    if where < 0.7 or not body:
        starts = [0] + [m.end() for m in re.finditer(rb"\n", head)]
        pos = rng.choice(starts)
        return _insert(raw, pos, block), f"{n} junk header lines"
    parts = [m.end() for m in re.finditer(rb"(?m)^--[^\n]+\n", raw)]  # a part's header block
    if not parts:
        raise _Skip
    return _insert(raw, rng.choice(parts), block), f"{n} junk header lines in a part"


_LONG_UNITS = (b"a", b" ", b"x@", b"<", b"5.1.1 ", b"550-", b"0", b"user@example.com ", b"A" * 3 + b"=",
               b"=?utf-8?q?x?= ", b"\t", b"-", b"@.", b"550 5.1.1 <u@example.com>: ", b"(", b"\"", b"#",
               b"Final-Recipient: rfc822; ", b"http://x/", b"<x@y>,", b"Action: failed ", b":", b"..")


def long_line(rng, raw, gen):
    size = int(10 ** rng.uniform(3, 6.02))  # 1 KB to ~1 MB, log-uniform: most are short
    unit = rng.choice(_LONG_UNITS)
    line = (unit * (size // len(unit) + 1))[:size]
    if rng.random() < 0.3:
        line = rng.choice((b"Diagnostic-Code: smtp; ", b"Status: ", b"Final-Recipient: rfc822; ",
                           b"Remote-MTA: dns; ", b"")) + line
    head, sep, body = _split(raw)
    where = rng.randrange(4)
    if where == 0 and head:  # a header's value
        names = [m.start(1) for m in re.finditer(rb"(?m)^[A-Za-z-]+:[ \t]*()", head)]
        pos = rng.choice(names) if names else 0
        out, place = _insert(raw, pos, line), "in a header"
    elif where == 1:  # the first line
        out, place = line + b"\n" + raw, "first"
    else:  # somewhere in the body, at a line start
        start = len(head) + len(sep)
        pos = _line_start(raw, rng.randrange(start, len(raw) + 1)) if start < len(raw) else len(raw)
        pos = max(pos, start)
        out, place = _insert(raw, pos, line + b"\n"), "in the body"
    return out, f"long_line({size} bytes of {unit[:24]!r}, {place})"


def folding(rng, raw, gen):
    head, sep, body = _split(raw)
    fields = list(re.finditer(rb"(?m)^([A-Za-z][\w-]*):([^\n]*)$", head))
    trick = rng.randrange(6)
    if trick == 0 and fields:  # a value folded at random points
        m = rng.choice(fields)
        value = m.group(2)
        cuts = sorted(rng.sample(range(len(value) + 1), min(len(value) + 1, rng.choice((1, 3, 20)))))
        pieces = [value[i:j] for i, j in zip([0] + cuts, cuts + [len(value)])]
        folded = rng.choice((b"\n ", b"\n\t", b"\r\n ", b"\n\n ", b"\n \n")).join(pieces)
        return raw[:m.start(2)] + folded + raw[m.end(2):], "header folded at odd places"
    if trick == 1:  # a continuation line before any header
        return b" continued from nowhere\n\tand again\n" + raw, "continuation before the first header"
    if trick == 2 and fields:  # folded inside the name
        m = rng.choice(fields)
        name = m.group(1)
        at = rng.randrange(1, len(name)) if len(name) > 1 else 1
        return raw[:m.start(1) + at] + b"\n " + raw[m.start(1) + at:], "header name folded"
    if trick == 3 and fields:  # very many continuation lines
        m = rng.choice(fields)
        n = rng.choice((100, 5000, 50000))
        return raw[:m.end(2)] + b"\n x" * n + raw[m.end(2):], f"header of {n} continuation lines"
    if trick == 4 and fields:  # whitespace-only continuations
        m = rng.choice(fields)
        return raw[:m.end(2)] + b"\n \n\t\n   " + raw[m.end(2):], "blank continuation lines"
    # space before the colon, and obs-fold of an encoded word
    return re.sub(rb"(?m)^([A-Za-z][\w-]*):", rb"\1 \t:", raw, count=rng.randrange(1, 20)), \
        "space before the colon"


_CHARSETS = (b"utf-8", b"x-unknown", b"iso-8859-99", b"utf-7", b"utf-16", b"utf-32", b"rot13", b"base64",
             b"hex", b"zlib", b"bz2", b"undefined", b"idna", b"punycode", b"\"", b"utf-8\xff", b"",
             b"unicode-escape", b"raw-unicode-escape", b"uu", b"mbcs", b"cp65001", b"utf8\x00", b"quopri",
             b"us-ascii", b"gb2312", b"iso-2022-jp", b"shift_jis")
_BAD_UTF8 = (b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80", b"\xc0\xaf")


def charset_lie(rng, raw, gen):
    charset = rng.choice(_CHARSETS)
    ctypes = list(re.finditer(rb"(?im)^content-type:[ \t]*(text|message)/[^\n;]*", raw))
    if ctypes:
        m = rng.choice(ctypes)
        after = raw[m.end():]
        after = re.sub(rb'^;?[ \t]*charset="?[^";\n]*"?', b"", after, flags=re.I)
        raw = raw[:m.end()] + b"; charset=\"" + charset + b"\"" + after
    else:
        head, sep, body = _split(raw)
        raw = b"Content-Type: text/plain; charset=\"" + charset + b"\"\n" + raw
    if charset.startswith(b"utf"):
        data = bytearray(raw)
        for _ in range(rng.choice((1, 5, 50))):
            pos = rng.randrange(len(data) + 1)
            data[pos:pos] = rng.choice(_BAD_UTF8)
        raw = bytes(data)
    return raw, f"charset lie ({charset!r})"


def encoding_lie(rng, raw, gen):
    cte = rng.choice((b"base64", b"quoted-printable", b"x-uuencode", b"uuencode", b"7bit", b"8bit",
                      b"binary", b"x-unknown", b"base64; junk", b"BASE64 ", b""))
    found = list(re.finditer(rb"(?im)^content-transfer-encoding:[^\n]*", raw))
    parts = list(re.finditer(rb"(?im)^content-type:[^\n]*\n", raw))
    if found and rng.random() < 0.6:
        m = rng.choice(found)
        raw = raw[:m.start()] + b"Content-Transfer-Encoding: " + cte + raw[m.end():]
    elif parts:
        m = rng.choice(parts)
        raw = _insert(raw, m.end(), b"Content-Transfer-Encoding: " + cte + b"\n")
    else:
        raw = b"Content-Transfer-Encoding: " + cte + b"\n" + raw
    garbage = rng.choice((b"", b"=ZZ=\n=", b"====", b"@@@@!!!!", b"begin 644 x\nM" + b"\xff" * 60 + b"\nend\n",
                          b"YWJj\n=\nYWJ", b"=\xff=\x00", b"=" * 1000, b"QUJD" * 3 + b"\n\x00\n"))
    if garbage:
        head, sep, body = _split(raw)
        pos = len(head) + len(sep) + (rng.randrange(len(body) + 1) if body else 0)
        raw = _insert(raw, pos, garbage)
    return raw, f"transfer-encoding lie ({cte!r})"


def _report_mail(rng, ctype: bytes, name: bytes, data: bytes, encode: bytes = b"base64") -> bytes:
    subject = rng.choice((b"Report domain: example.com Submitter: google.com Report-ID: <1>",
                          b"Report Domain: example.com", b"SMTP TLS Report", b"hello"))
    body = _b64(data) if encode == b"base64" else data
    if rng.random() < 0.5:
        return (b"From: noreply-dmarc-support@google.com\nTo: dmarc@example.com\nSubject: " + subject
                + b"\nMIME-Version: 1.0\nContent-Type: " + ctype + b'; name="' + name
                + b'"\nContent-Disposition: attachment; filename="' + name + b'"\nContent-Transfer-Encoding: '
                + encode + b"\n\n" + body)
    return (b"From: noreply-dmarc-support@google.com\nTo: dmarc@example.com\nSubject: " + subject
            + b'\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="rep"\n\n--rep\n'
              b"Content-Type: text/plain\n\nThis is a report.\n--rep\nContent-Type: " + ctype + b'; name="'
            + name + b'"\nContent-Disposition: attachment; filename="' + name + b'"\nContent-Transfer-Encoding: '
            + encode + b"\n\n" + body + b"\n--rep--\n")


def archive(rng, raw, gen):
    payload, _ = gen.report_payload(rng)
    trick = rng.randrange(10)
    if trick == 0:
        data, what = gzip.compress(payload, 1, mtime=0)[:-rng.randrange(1, 40)], "truncated gzip"
    elif trick == 1:
        g = bytearray(gzip.compress(payload, 1, mtime=0))
        g[-8] ^= 0xFF
        data, what = bytes(g), "gzip with a bad CRC"
    elif trick == 2:
        data, what = gzip.compress(_rand_bytes(rng, rng.choice((0, 10, 5000))), 1, mtime=0), "gzip of junk"
    elif trick == 3:
        data, what = gzip.compress(gzip.compress(payload, 1, mtime=0), 1, mtime=0), "gzip of gzip"
    elif trick == 4:
        data, what = b"\x1f\x8b" + _rand_bytes(rng, 200), "gzip magic, then junk"
    elif trick == 5:
        z = bytearray(_zip([("report.xml", payload)]))
        cut = z.find(b"PK\x01\x02")
        if cut > 0 and rng.random() < 0.5:
            z[cut:cut + 4] = b"XXXX"
            what = "zip with a broken directory"
        else:
            z = z[:rng.randrange(4, len(z))]
            what = "truncated zip"
        data = bytes(z)
    elif trick == 6:
        data, what = _zip([]), "empty zip"
    elif trick == 7:
        data, what = _zip([("dir/", b""), ("../../etc/passwd", payload), ("r.json", b"[]")]), "zip of odd members"
    elif trick == 8:
        data, what = _zip([("r%d.xml" % i, _rand_bytes(rng, 50)) for i in range(rng.choice((2, 60)))]), \
            "zip of junk members"
    else:
        data, what = _zip([("inner.zip", _zip([("report.xml", payload)]))]), "zip in a zip"
    if rng.random() < 0.3:
        return data, what + " (bare)"
    ctype = rng.choice((b"application/gzip", b"application/zip", b"application/tlsrpt+gzip",
                        b"application/octet-stream", b"application/x-zip-compressed", b"text/xml"))
    name = rng.choice((b"google.com!example.com!1704758400!1704844799.xml.gz",
                       b"google.com!example.com!1704758400!1704844799.zip", b"report.json.gz", b"x"))
    return _report_mail(rng, ctype, name, data), what + " attached"


def xml_json_swap(rng, raw, gen):
    payload, _ = gen.report_payload(rng)
    trick = rng.randrange(6)
    if trick == 0:
        data = json.dumps({"organization-name": payload.decode("utf-8", "replace"),
                           "policies": [{"policy": payload.decode("latin-1")}]}).encode()
        what, ctype, name = "XML inside JSON", b"application/tlsrpt+json", b"report.json"
    elif trick == 1:
        data = (b"<?xml version=\"1.0\"?><feedback><report_metadata><org_name>"
                + payload.replace(b"<", b"&lt;")[:20000] + b"</org_name></report_metadata></feedback>")
        what, ctype, name = "JSON inside XML", b"application/xml", b"report.xml"
    elif trick == 2:
        data, what, ctype, name = payload, "report under the other type's name", \
            rng.choice((b"application/tlsrpt+json", b"application/xml", b"application/json")), \
            rng.choice((b"r.json", b"r.xml", b"r.json.gz"))
    elif trick == 3:
        data = b"{\"a\": " + payload + b"}" if payload[:1] == b"<" else b"<feedback>" + payload + b"</feedback>"
        what, ctype, name = "one format wrapped in the other", b"application/xml", b"report.xml"
    elif trick == 4:
        data = payload.replace(b"<feedback>", b"<feedback><![CDATA[{\"x\": 1}]]>", 1).replace(
            b"\"policies\"", b"\"<policies>\"", 1)
        what, ctype, name = "CDATA and tags in keys", b"application/xml", b"report.xml"
    else:
        data = json.dumps([payload.decode("utf-8", "replace")] * 3).encode()
        what, ctype, name = "JSON array of XML strings", b"application/tlsrpt+json", b"report.json"
    if rng.random() < 0.3:
        data = gzip.compress(data, 1, mtime=0)
        name += b".gz"
        ctype = b"application/tlsrpt+gzip" if b"json" in ctype else b"application/gzip"
    if rng.random() < 0.3:
        return data, what + " (bare)"
    return _report_mail(rng, ctype, name, data), what


def nul_bytes(rng, raw, gen):
    data = bytearray(raw)
    n = rng.choice((1, 3, 30, 1000))
    head, sep, _ = _split(raw)
    for _ in range(n):
        pos = rng.randrange(len(head) + 1) if rng.random() < 0.5 else rng.randrange(len(data) + 1)
        data[pos:pos] = b"\x00"
    return bytes(data), f"{n} NUL bytes"


def eight_bit_headers(rng, raw, gen):
    head, sep, body = _split(raw)
    fields = list(re.finditer(rb"(?m)^([A-Za-z][\w-]*):[ \t]*", head))
    if not fields:
        raise _Skip
    data = bytearray(raw)
    chosen = sorted({m.end() if rng.random() < 0.8 else m.start() + 1
                     for m in rng.sample(fields, min(len(fields), rng.choice((1, 3, 10))))}, reverse=True)
    for pos in chosen:
        data[pos:pos] = rng.choice(("é".encode(), "Ünïcødé".encode("latin-1"), b"\xff\xfe\xfd",
                                    _rand_bytes(rng, 8), "日本".encode("shift_jis"), b"\xc3"))
    if rng.random() < 0.3:  # the DSN fields too
        for m in re.finditer(rb"(?im)^(final-recipient|original-recipient|diagnostic-code|status|"
                             rb"feedback-type|source-ip|reported-domain):[ \t]*", raw):
            data[m.end():m.end()] = b"\xe9\xff"
            break
    return bytes(data), f"8-bit bytes in {len(chosen)} headers"


_WORDS = (b"=?utf-8?B?####?=", b"=?x-unknown?Q?abc?=", b"=?utf-8?Z?abc?=", b"=?utf-8?B?", b"=?undefined?B?YWJj?=",
          b"=?rot13?Q?abc?=", b"=?utf-8*en?Q?a?=", b"=?utf-8?q?=FF=FE?=", b"=?utf-8?b?/w==?=", b"=??Q??=",
          b"=?utf-8?b?YWJj", b"=?base64?b?YWJj?=", b"=?utf-16?b?/w==?=", b"=?utf-8?q?a=?=", b"=?\xff?q?a?=",
          b"=?utf-8?b?PGFAYj4=?=", b"=?iso-8859-1?q?<a@b>?=", b"=?utf-8?q?\x00?=", b"=?hex?q?zz?=",
          b"=?utf-8?b?" + base64.b64encode(b"\xff" * 40) + b"?=", b"=?zlib?b?YWJj?=")


def encoded_words(rng, raw, gen):
    head, sep, body = _split(raw)
    fields = list(re.finditer(rb"(?m)^(from|to|subject|cc|reply-to|return-path|final-recipient|"
                              rb"original-recipient|x-failed-recipients|content-type|content-disposition|"
                              rb"reported-domain|feedback-type|message-id|delivered-to|diagnostic-code|"
                              rb"[A-Za-z][\w-]*):[ \t]*", raw, re.I))
    if not fields:
        raise _Skip
    n = rng.choice((1, 1, 3, 2000))
    words = b" ".join(rng.choice(_WORDS) for _ in range(n))
    data = raw
    for m in sorted(rng.sample(fields, min(len(fields), rng.choice((1, 2, 5)))), key=lambda m: -m.end()):
        data = _insert(data, m.end(), words + rng.choice((b" ", b"", b" <u@example.com> ")))
    return data, f"{n} garbage encoded words"


_DSN_FIELDS = re.compile(rb"(?im)^(final-recipient|original-recipient|action|status|diagnostic-code|remote-mta|"
                         rb"reporting-mta|arrival-date|last-attempt-date|feedback-type|source-ip|reported-domain|"
                         rb"original-mail-from|user-agent|version|received-date|x-postfix-sender|date|"
                         rb"will-retry-until|auth-failure|delivery-result|identity-alignment|"
                         rb"authentication-results|original-rcpt-to)([ \t]*:[ \t]*)([^\n]*)")
_ODD_VALUES = (b"", b"rfc822;", b";;;", b"9.9.9999999999", b"99999999999999999999999", b"-1", b"NaN", b"1e400",
               b"rfc822; <<<>>>", b"Mon, 99 Foo 99999 99:99:99 +9999", b"[::ffff:999.1.1.1]", b"dns;",
               b"smtp; 550", b"x-unix; \xff\xfe", b"5.1.1 5.1.1 5.1.1", b"rfc822; @", b"4.", b"0.0.0",
               b"2.0.0 (delivered)", b"abuse; virus", b"utf-8; \x00", b"rfc822;" + b" " * 3000 + b"x",
               b"Thu, 01 Jan 1970 00:00:00 +0000", b"Tue, 31 Dec 9999 23:59:59 -2359", b"smtp;" + b"5" * 400)
_XML_FIELDS = re.compile(rb"<(begin|end|count|source_ip|date_range|policy_published|p|sp|pct|adkim|aspf|"
                         rb"disposition|dkim|spf|result|header_from|domain|org_name|report_id|email|"
                         rb"version|fo|selector|scope|envelope_from|np|testing|discovery_method)>([^<]*)</\1>")
_XML_VALUES = (b"", b"99999999999999999999", b"-1", b"1e400", b"abc", b"9999999999999", b"1.5", b"&amp;",
               b"\xff", b"0x10", b" 1 ", b"-99999999999999", b"nan", b"inf", b"<x/>", b"2024-01-01")
_JSON_NUMBER = re.compile(rb"(\"[\w-]+\"\s*:\s*)(-?\d+(?:\.\d+)?|\"[^\"]*\"|null|true|false)")
_JSON_VALUES = (b"\"1\"", b"null", b"-1", b"99999999999999999999999", b"1e400", b"[]", b"{}", b"\"\"",
                b"true", b"\"2024-99-99T99:99:99Z\"", b"[1, [2, [3]]]", b"\"\\ud800\"", b"0.5", b"\"<x>\"")


def field_values(rng, raw, gen):
    n = rng.choice((1, 3, 10))
    out = raw
    what = []
    for pattern, values, fmt in ((_DSN_FIELDS, _ODD_VALUES, "dsn"), (_XML_FIELDS, _XML_VALUES, "xml"),
                                 (_JSON_NUMBER, _JSON_VALUES, "json")):
        found = list(pattern.finditer(out))
        if not found:
            continue
        for m in sorted(rng.sample(found, min(n, len(found))), key=lambda m: -m.start()):
            value = rng.choice(values)
            if fmt == "xml":
                out = out[:m.start(2)] + value + out[m.end(2):]
            elif fmt == "json":
                out = out[:m.start(2)] + value + out[m.end(2):]
            else:
                out = out[:m.start(3)] + value + out[m.end(3):]
        what.append(fmt)
    if not what:
        raise _Skip
    return out, f"odd {'/'.join(what)} field values"


MUTATIONS = (
    (byte_flips, 10), (truncate, 6), (repeat_chunk, 4), (boundaries, 8), (deep_nesting, 3), (splice, 5),
    (junk_headers, 6), (long_line, 3), (folding, 5), (charset_lie, 6), (encoding_lie, 6), (archive, 4),
    (xml_json_swap, 4), (nul_bytes, 4), (eight_bit_headers, 6), (encoded_words, 6), (field_values, 8),
)
_FUNCS = [f for f, _ in MUTATIONS]
_WEIGHTS = [w for _, w in MUTATIONS]


def _pick(rng):
    f = rng.choices(_FUNCS, _WEIGHTS)[0]
    return f.__name__, f



def _inner(rng, raw, gen):
    """Mutate what a report attachment holds (unpacked), then pack and encode it again."""
    if _is_message(raw):
        found = _attachment(raw)
        if found is None:
            return raw, None
        (start, end), data = found
    else:
        start, end, data = None, None, raw
    payload = _unpack(data)
    mutate = rng.choice((field_values, field_values, field_values, byte_flips, truncate, repeat_chunk, nul_bytes))
    try:
        payload, what = mutate(rng, payload, gen)
    except _Skip:
        return raw, None
    packed = _pack(rng, payload, data)
    if start is None:
        return packed, f"report content: {what}"
    return raw[:start] + _b64(packed) + raw[end:], f"attached report content: {what}"
