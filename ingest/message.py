"""Turning raw bytes into an `email.message.Message`, the same way everywhere.

Line endings are normalised first (CRLF, LF and CR-only give identical results), and the
limits that keep a hostile message from costing unbounded time or memory are checked here.
"""
from __future__ import annotations

import email
import email.errors
import email.feedparser
import email.message
import email.utils
from email._policybase import compat32
from email.header import decode_header, make_header
from email.message import _parseparam

from ingest.headers import decode_text, has_surrogates, header_value_text, message_text, param_text
from ingest.mimesplit import ShapeLimit, read_message

MAX_MIME_DEPTH = 25
MAX_MIME_PARTS = 2000
# The email package keeps every line as a string while parsing (~90 bytes each): a message
# of millions of tiny lines costs gigabytes. Real mail, even 25 MB of base64, stays far below.
MAX_LINES = 1_000_000
_MISSING = object()


class IndexedMessage(email.message.Message):
    """A compat32 `Message` that answers header look-ups from a dict, always with text.

    The email package scans the whole header list on every look-up, and reading a bounce
    asks each part dozens of questions (content type, parameters, From, Subject...). The
    index and what is cached from it (values, content type, parameters) are dropped whenever
    a header changes.
    """

    _index: dict[str, tuple[str, str]] | None = None
    _ctype: str | None = None
    _values: dict | None = None  # lower-case name -> what `get` returns
    _params: dict | None = None  # lower-case header name -> its parsed parameters
    _decoded: tuple | None = None  # (8-bit payload, its text in the declared charset)

    def _changed(self) -> None:
        self._index = None
        self._ctype = None
        self._values = None
        self._params = None
        self._decoded = None

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
        value = values[key] = self._fetch(*hit)
        return value

    def _fetch(self, name, value):
        # compat32 hands back a str as it is, unless it holds undecodable bytes (never in ASCII)
        if self.policy is compat32 and type(value) is str and value.isascii():
            return value
        fetched = self.policy.header_fetch_parse(name, value)
        return fetched if isinstance(fetched, str) else header_value_text(value)

    def get_all(self, name, failobj=None):
        key = name.lower()
        if key not in self._header_index():
            return failobj
        return [self._fetch(k, v) for k, v in self._headers if k.lower() == key]

    def values(self):
        return [self._fetch(k, v) for k, v in self._headers]

    def items(self):
        return [(k, self._fetch(k, v)) for k, v in self._headers]

    def get_payload(self, i=None, decode=False):
        payload = self._payload
        # what the email package returns for these without looking anything up: the parts,
        # or text that holds no undecodable bytes
        if i is None and not decode and (isinstance(payload, list) or type(payload) is str and payload.isascii()):
            return payload
        if i is None and not decode and type(payload) is str:
            decoded = self._decoded
            if decoded is not None and decoded[0] is payload:
                return decoded[1]  # flufl.bounce's detectors ask once each
            if has_surrogates(payload):
                # 8-bit text: the email package decodes it with whatever the charset parameter
                # names (a tuple, a non-text codec, a name with a NUL) and fails on many of them
                text = decode_text(payload.encode("ascii", "surrogateescape"), self.get_param("charset"), "ascii")
                self._decoded = (payload, text)
                return text
        return super().get_payload(i, decode)

    def get_filename(self, failobj=None):
        filename = self.get_param("filename", _MISSING, "content-disposition")
        if filename is _MISSING:
            filename = self.get_param("name", _MISSING, "content-type")
        if filename is _MISSING:
            return failobj
        return param_text(filename).strip()

    def get_boundary(self, failobj=None):
        boundary = self.get_param("boundary", _MISSING)
        if boundary is _MISSING:
            return failobj
        return param_text(boundary).rstrip()

    def get_content_charset(self, failobj=None):
        try:
            return super().get_content_charset(failobj)
        except (ValueError, TypeError):  # an RFC 2231 charset whose own charset is no codec name
            return failobj

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
        value = self.get(header, _MISSING)
        if value is _MISSING:
            return failobj
        params = _params_of(str(value)[:MAX_PARAMS_TEXT])
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


# The email package splits parameters in time that grows with their number times the header's
# length; no real Content-Type or Content-Disposition is near this long.
MAX_PARAMS_TEXT = 4096


def _params_of(value: str) -> list:
    """email.message.Message._get_params_preserve, on `value`."""
    params = []
    for piece in _parseparam(value):
        name, sep, val = piece.partition("=")
        params.append((name.strip(), val.strip()) if sep else (piece.strip(), ""))
    return email.utils.decode_params(params)


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
    try:  # the email package's tree, built faster, and never deeper or larger than allowed
        found = read_message(raw, IndexedMessage, MAX_MIME_DEPTH, MAX_MIME_PARTS)
    except ShapeLimit as exc:
        raise UnreadableMessage(str(exc)) from None
    if found is None:
        msg = _feed(raw)
    else:
        msg, parts, depth = found
        if parts <= MAX_MIME_PARTS and depth <= MAX_MIME_DEPTH:
            return msg  # counted while it was read
    _check_shape(msg)
    return msg


FEED = 8192  # bytes given to the email package's parser at a time (what email.message_from_bytes gives)


def _feed(raw: bytes) -> email.message.Message:
    """email.message_from_bytes, stopped as soon as the parts it has open nest deeper than
    allowed: each level makes every line of the levels inside it cost more."""
    parser = email.feedparser.BytesFeedParser(_factory=IndexedMessage)
    for at in range(0, len(raw), FEED):
        parser.feed(raw[at:at + FEED])
        if len(parser._msgstack) > MAX_MIME_DEPTH + 1:
            raise UnreadableMessage(f"MIME nesting deeper than {MAX_MIME_DEPTH} levels")
    return parser.close()


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


# RFC 2047 decoding costs ~1 µs a character; no header that needs it is this long.
MAX_DECODED_HEADER = 8192


def header_text(msg: email.message.Message, name: str) -> str | None:
    """A header decoded from RFC 2047 (when it is shorter than MAX_DECODED_HEADER) and
    unfolded, or None."""
    value = msg.get(name)
    if value is None:
        return None
    value = str(value)
    if "=?" in value and len(value) <= MAX_DECODED_HEADER:
        try:
            value = str(make_header(decode_header(value)))
        except (ValueError, LookupError, UnicodeError, email.errors.MessageError):
            pass  # encoded words that do not decode (bad base64, no such charset) read as written
    return " ".join(value.split())


def part_text(part: email.message.Message) -> str:
    """The decoded text of a leaf part, in its declared charset, never raising."""
    payload = part.get_payload(decode=True)
    if payload is None:
        inner = part.get_payload()
        if isinstance(inner, list):
            return "\n".join(message_text(p) for p in inner if isinstance(p, email.message.Message))
        return inner if isinstance(inner, str) else ""
    return decode_text(payload, part.get_content_charset())
