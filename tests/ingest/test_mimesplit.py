"""ingest.mimesplit builds the same message tree as the email package (compat32), or declines."""
from __future__ import annotations

import email
from pathlib import Path

import pytest

from ingest.message import IndexedMessage, load_message, normalise_newlines
from ingest.mimesplit import message_from_bytes

ROOT = Path(__file__).resolve().parents[2]
STDLIB_EMAIL_DATA = Path(email.__file__).resolve().parent.parent / "test" / "test_email" / "data"


def differences(a, b, path="message") -> str | None:
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} != {type(b).__name__}"
    for attr in ("_headers", "_unixfrom", "preamble", "epilogue", "_default_type", "_charset", "policy"):
        if getattr(a, attr) != getattr(b, attr):
            return f"{path}: {attr} {getattr(a, attr)!r:.200} != {getattr(b, attr)!r:.200}"
    if [(type(d), d.args) for d in a.defects] != [(type(d), d.args) for d in b.defects]:
        return f"{path}: defects {a.defects} != {b.defects}"
    if set(vars(a)) != set(vars(b)):
        return f"{path}: attributes {sorted(set(vars(a)) ^ set(vars(b)))}"
    pa, pb = a._payload, b._payload
    if isinstance(pa, list) and isinstance(pb, list):
        if len(pa) != len(pb):
            return f"{path}: {len(pa)} parts != {len(pb)}"
        for i, (x, y) in enumerate(zip(pa, pb)):
            found = differences(x, y, f"{path}.{i}")
            if found:
                return found
        return None
    return None if pa == pb else f"{path}: payload {pa!r:.200} != {pb!r:.200}"


def check(raw: bytes) -> bool:
    """Asserts the trees agree; False when the fast reader declined."""
    raw = normalise_newlines(raw)
    got = message_from_bytes(raw, IndexedMessage)
    if got is None:
        return False
    want = email.message_from_bytes(raw, _class=IndexedMessage)
    assert differences(want, got) is None, differences(want, got)
    return True


def test_corpus_and_samples_give_the_same_tree(corpus):
    files = [p for p in sorted(corpus.rglob("*")) if p.is_file()]
    files += [p for p in sorted((ROOT / "sample_reports").rglob("*")) if p.is_file()]
    files += [p for p in sorted((ROOT / "tests" / "ingest" / "data").rglob("*")) if p.is_file()]
    read = sum(check(p.read_bytes()) for p in files)
    assert read >= len(files) * 0.95  # declining is for rare shapes only


def test_stdlib_email_test_messages_give_the_same_tree():
    files = sorted(STDLIB_EMAIL_DATA.glob("msg_*.txt"))
    if not files:
        pytest.skip(f"Python's email test data is not installed ({STDLIB_EMAIL_DATA})")
    for path in files:
        check(path.read_bytes())


SHAPES = {
    "no boundary": b"Content-Type: multipart/mixed\n\nbody\n",
    "start boundary missing": b'Content-Type: multipart/mixed; boundary="b"\n\npre\n--c\n',
    "close boundary missing": b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n\ntext\n',
    "empty part at the end": b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n--b',
    "double boundaries": b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n--b\n\nx\n--b--\n',
    "boundary with blanks": b'Content-Type: multipart/mixed; boundary="b"\n\n--b \t\n\nx\n--b-- \nepi\n',
    "boundary-like line": b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n\n--bx\n--b--x\n--b--\n',
    "nested": (b'Content-Type: multipart/mixed; boundary="o"\n\npre\n\n--o\n'
               b'Content-Type: multipart/alternative; boundary="i"\n\n--i\n\na\n--i--\nep\n\n--o\n\nb\n--o--\n\n'),
    "nested, outer boundary closes inner": (b'Content-Type: multipart/mixed; boundary="o"\n\n--o\n'
                                            b'Content-Type: multipart/mixed; boundary="i"\n\n--i\n\na\n--o--\n'),
    "digest": (b'Content-Type: multipart/digest; boundary="d"\n\n--d\n\nSubject: x\n\nbody\n--d\n'
               b'Content-Type: text/plain\n\nt\n--d--\n'),
    "delivery status": (b'Content-Type: message/delivery-status\n\nReporting-MTA: dns; a\n\n\n'
                        b'Final-Recipient: rfc822; x@y\nAction: failed\nnot a header\n\n'),
    "rfc822 without headers": b"Content-Type: message/rfc822\n\njust text\n",
    "rfc822 at a boundary": (b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
                             b'Content-Type: message/rfc822\n\n--b--\n'),
    "unix from and misplaced": b"From a@b Mon\nSubject: x\nFrom c@d Tue\nTo: y\n\nbody",
    "from line last in the header": b"Subject: x\nFrom a@b Mon\n",
    "continuation first": b" folded\nSubject: x\n\nbody\n",
    "no separator": b"Subject: x\nthis is body\nmore\n",
    "missing name": b"Subject: x\n: no name\n\nb\n",
    "folded headers": b"Subject: a\n\tb\n  c\nTo: x\n\n",
    "bad transfer encoding": (b'Content-Type: multipart/mixed; boundary="b"\n'
                              b'Content-Transfer-Encoding: base64\n\n--b\n\nx\n--b--\n'),
    "other line breaks": b"Subject: a\x0cb\nX: c\x1cd\n\nbody\x0bline\n",
    "eight-bit": "Subject: caf\u00e9\n\nna\u00efve\n".encode("latin-1"),
    "headers only, no newline": b"Subject: x",
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_unusual_shapes_give_the_same_tree_or_are_declined(name):
    check(SHAPES[name])


def test_declines_carriage_returns_and_load_message_still_reads_them():
    raw = b"Subject: x\r\n\r\nbody\r\n"
    assert message_from_bytes(raw, IndexedMessage) is None
    assert load_message(raw).get_payload() == "body\n"
