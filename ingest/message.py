"""Turning raw bytes into an `email.message.Message`, the same way everywhere.

Line endings are normalised first (CRLF, LF and CR-only give identical results), and the
limits that keep a hostile message from costing unbounded time or memory are checked here.
"""
from __future__ import annotations

import email
import email.message
from email._policybase import compat32
from email.header import decode_header, make_header

from ingest.mimesplit import read_message

MAX_MIME_DEPTH = 25
MAX_MIME_PARTS = 2000
# The email package keeps every line as a string while parsing (~90 bytes each): a message
# of millions of tiny lines costs gigabytes. Real mail, even 25 MB of base64, stays far below.
MAX_LINES = 1_000_000
_MISSING = object()


class IndexedMessage(email.message.Message):
    """A compat32 `Message` that answers header look-ups from a dict.

    The email package scans the whole header list on every look-up, and reading a bounce
    asks each part dozens of questions (content type, parameters, From, Subject...). The
    index and what is cached from it (values, content type, parameters) are dropped whenever
    a header changes.
    """

    _index: dict[str, tuple[str, str]] | None = None
    _ctype: str | None = None
    _values: dict | None = None  # lower-case name -> what `get` returns (strings only)
    _params: dict | None = None  # lower-case header name -> its parsed parameters

    def _changed(self) -> None:
        self._index = None
        self._ctype = None
        self._values = None
        self._params = None

    def set_raw(self, name, value):
        super().set_raw(name, value)
        self._changed()

    def __setitem__(self, name, val):
        super().__setitem__(name, val)
        self._changed()

    def __delitem__(self, name):
        super().__delitem__(name)
        self._changed()

    def add_header(self, _name, _value, **_params):
        super().add_header(_name, _value, **_params)
        self._changed()

    def replace_header(self, _name, _value):
        super().replace_header(_name, _value)
        self._changed()

    def set_boundary(self, boundary):
        super().set_boundary(boundary)
        self._changed()

    def set_default_type(self, ctype):
        super().set_default_type(ctype)
        self._changed()

    def _header_index(self) -> dict[str, tuple[str, str]]:
        index = self._index
        if index is None:
            # the first field of a name wins, as in the email package's get()
            index = self._index = {k.lower(): (k, v) for k, v in reversed(self._headers)}
        return index

    def get(self, name, failobj=None):
        key = name.lower()
        values = self._values
        if values is None:
            values = self._values = {}
        elif key in values:
            return values[key]
        hit = self._header_index().get(key)
        if hit is None:
            return failobj
        value = hit[1]
        # compat32 hands back a str as it is, unless it holds undecodable bytes (never in ASCII)
        if not (self.policy is compat32 and type(value) is str and value.isascii()):
            value = self.policy.header_fetch_parse(*hit)
        if type(value) is str:  # a Header object (undecodable bytes) is mutable: made anew each time
            values[key] = value
        return value

    def get_all(self, name, failobj=None):
        if name.lower() not in self._header_index():
            return failobj
        return super().get_all(name, failobj)

    def get_payload(self, i=None, decode=False):
        payload = self._payload
        # what the email package returns for these without looking anything up: the parts,
        # or text that holds no undecodable bytes
        if i is None and not decode and (isinstance(payload, list) or type(payload) is str and payload.isascii()):
            return payload
        return super().get_payload(i, decode)

    def walk(self):
        """The email package's walk (this part, then each subpart's walk, depth first),
        without a generator per part."""
        stack = [self]
        while stack:
            part = stack.pop()
            yield part
            if part.is_multipart():
                stack.extend(reversed(part.get_payload()))

    def _get_params_preserve(self, failobj, header):
        key = header.lower()
        cache = self._params
        if cache is None:
            cache = self._params = {}
        elif key in cache:
            return list(cache[key])
        params = super()._get_params_preserve(None, header)
        if params is None:
            return failobj
        cache[key] = params
        return list(params)

    def __contains__(self, name):
        return name.lower() in self._header_index()

    def get_content_type(self):
        ctype = self._ctype
        if ctype is None:
            # the email package's get_content_type, on the cached get()
            value = self.get("content-type", _MISSING)
            if value is _MISSING:
                ctype = self.get_default_type()
            else:
                ctype = str(value).partition(";")[0].strip().lower()
                if ctype.count("/") != 1:
                    ctype = "text/plain"
            self._ctype = ctype
        return ctype


class UnreadableMessage(ValueError):
    """The bytes are not a message we can read; the text is the quarantine reason."""


def normalise_newlines(raw: bytes) -> bytes:
    if b"\r" not in raw:
        return raw
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def load_message(raw: bytes) -> email.message.Message:
    """Parse `raw` (compat32: the fastest policy) after normalising line endings."""
    raw = normalise_newlines(raw)
    lines = raw.count(b"\n") if len(raw) > MAX_LINES else 0  # never more lines than bytes
    if lines > MAX_LINES:
        raise UnreadableMessage(f"message has {lines} lines, more than the {MAX_LINES} a real "
                                "report or bounce has; refused to keep memory bounded")
    found = read_message(raw, IndexedMessage)  # the email package's tree, built faster
    if found is None:
        msg = email.message_from_bytes(raw, _class=IndexedMessage)
    else:
        msg, parts, depth = found
        if parts <= MAX_MIME_PARTS and depth <= MAX_MIME_DEPTH:
            return msg  # counted while it was read
    _check_shape(msg)
    return msg


def _check_shape(msg: email.message.Message) -> None:
    parts = 0
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        parts += 1
        if depth > MAX_MIME_DEPTH:
            raise UnreadableMessage(f"MIME nesting deeper than {MAX_MIME_DEPTH} levels")
        if parts > MAX_MIME_PARTS:
            raise UnreadableMessage(f"more than {MAX_MIME_PARTS} MIME parts")
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((p, depth + 1) for p in payload if isinstance(p, email.message.Message))


def looks_like_message(raw: bytes) -> bool:
    """True when the first line is a header field (so the bytes are an e-mail, not a file)."""
    head = raw.lstrip()[:1000]
    if head[:1] in (b"{", b"[", b"<") or head[:2] == b"\x1f\x8b" or head[:4] == b"PK\x03\x04":
        return False  # JSON, XML, gzip or zip: a bare report file
    first = head.split(b"\n", 1)[0]
    if first.startswith(b"From ") or first.startswith(b">From "):  # mbox separator
        return True
    name, sep, _ = first.partition(b":")
    return bool(sep) and 0 < len(name) <= 76 and all(33 <= c <= 126 for c in name)


def header_text(msg: email.message.Message, name: str) -> str | None:
    """A header decoded from RFC 2047 and unfolded, or None."""
    value = msg.get(name)
    if value is None:
        return None
    value = str(value)
    if "=?" in value:
        try:
            value = str(make_header(decode_header(value)))
        except (ValueError, LookupError, UnicodeError):
            pass
    return " ".join(value.split())


def part_text(part: email.message.Message) -> str:
    """The decoded text of a leaf part, in its declared charset, never raising."""
    payload = part.get_payload(decode=True)
    if payload is None:
        inner = part.get_payload()
        if isinstance(inner, list):
            return "\n".join(p.as_string() for p in inner if isinstance(p, email.message.Message))
        return inner if isinstance(inner, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")
