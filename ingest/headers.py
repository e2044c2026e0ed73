"""Header and parameter values as text, whatever bytes and charsets a message declares.

The email package answers some values with objects no string code expects (a `Header` for
undeclared 8-bit bytes, an RFC 2231 tuple), decodes with whatever a charset parameter names
(a non-text codec, a name with a NUL), and re-folds headers and parses addresses in time
that grows faster than their length. The functions here never raise on what a message
declares, and cost time in proportion to what they read; `for_readers` makes a message fit
for the report readers that parse it again with the email package (parsedmarc, mailparser).
"""
from __future__ import annotations

import base64
import codecs
import email.generator
import email.message
import email.utils
import io
from email.policy import Compat32


def header_value_text(value) -> str:
    """A header value as text, whatever bytes it holds.

    For a header with undeclared 8-bit bytes, compat32 answers a `Header` object, on which
    string code (ours and flufl.bounce's detectors) fails. RFC 6532 allows UTF-8 in headers,
    so the bytes are read as UTF-8, and what is not UTF-8 becomes U+FFFD.
    """
    if not isinstance(value, str):
        return str(value)
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no byte stands for
        data = value.encode("utf-8", "replace")
    return data.decode("utf-8", "replace")


def has_surrogates(text: str) -> bool:
    """Whether `text` holds undecodable bytes (as the email package keeps them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class _AsWritten(Compat32):
    """compat32, writing each header as it came (its own line breaks) and as text.

    The email package re-folds every header it writes, and for one holding non-ASCII text
    that takes time growing with the square of its length: seconds for a few KB. With
    `for_readers`, the headers are made fit for a reader that parses and writes them again
    with the email package (parsedmarc, mailparser): a value longer than READER_HEADER is
    cut there, and one with a long line of non-ASCII text is written as RFC 2047 encoded
    words (ASCII, which is re-folded in linear time).
    """

    for_readers = False

    def fold(self, name, value):
        return f"{name}: {header_value_text(value)}{self.linesep}"

    def fold_binary(self, name, value):
        value = value if isinstance(value, str) else str(value)
        if self.for_readers and _too_long(value):
            value = header_value_text(value)[:READER_HEADER]
            if not value.isascii():
                value = _encoded_words(value)
        return f"{name}: {value}{self.linesep}".encode("utf-8", "surrogateescape")


AS_WRITTEN = _AsWritten()
_FOR_READERS = _AsWritten(for_readers=True)


class _TextGenerator(email.generator.Generator):
    """Writes a message as text: headers as they came, each body as the text of its declared
    charset. The email package writes an 8-bit body encoded again in that charset, and fails
    when it names no codec."""

    def _handle_text(self, msg):
        payload = msg.get_payload()  # IndexedMessage's text, whatever the charset says
        if isinstance(payload, str):
            self._write_lines(payload)

    _writeBody = _handle_text


def message_text(msg: email.message.Message) -> str:
    """`msg` written out as text (headers as they came), in linear time and never raising on
    what it declares."""
    out = io.StringIO()
    _TextGenerator(out, mangle_from_=False, policy=AS_WRITTEN).flatten(msg)
    return out.getvalue()
LONG_TEXT_LINE = 200  # characters of a non-ASCII header line that re-folding reads fast enough
# What the fields a report reader looks at (dates, addresses, subject) ever need; parsing a
# longer date or address list costs milliseconds per kilobyte in those readers.
READER_HEADER = 2000


def _too_long(value) -> bool:
    if not isinstance(value, str) or len(value) <= LONG_TEXT_LINE:
        return False
    return len(value) > READER_HEADER or (not value.isascii() and max(map(len, value.split("\n"))) > LONG_TEXT_LINE)


def _encoded_words(text: str) -> str:
    """`text` (unfolded) with each non-ASCII word as encoded words of at most 45 bytes,
    folded at the spaces between words."""
    lines, line = [], ""
    for word in " ".join(text.split()).split(" "):
        if not word.isascii():
            data = word.encode("utf-8")
            pieces, at = [], 0
            while at < len(data):
                end = min(at + 45, len(data))
                while end < len(data) and end > at + 1 and 0x80 <= data[end] < 0xC0:
                    end -= 1  # not inside a character
                pieces.append("=?utf-8?b?" + base64.b64encode(data[at:end]).decode("ascii") + "?=")
                at = end
            word = " ".join(pieces)
        if line and len(line) + len(word) > 76:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n ".join(lines)


# Header fields of one part a report reader is given besides those it reads (KEPT_FIELDS): it
# looks fields up one by one, each look-up a scan of them all. Real parts have tens.
READER_FIELDS = 200
KEPT_FIELDS = frozenset({"mime-version", "from", "to", "cc", "subject", "date", "message-id", "sender",
                         "reply-to", "return-path", "dkim-signature", "authentication-results",
                         "received-spf", "x-mailer", "user-agent"})


class _ReaderGenerator(email.generator.BytesGenerator):
    """Writes, of each part's header fields, the MIME ones and those in KEPT_FIELDS, and the
    first READER_FIELDS of the others."""

    def _write_headers(self, msg):
        others = 0
        for name, value in msg.raw_items():
            key = name.lower()
            if not (key.startswith("content-") or key in KEPT_FIELDS):
                others += 1
                if others > READER_FIELDS:
                    continue
            self._fp.write(self.policy.fold_binary(name, value))
        self.write(self._NL)


def for_readers(raw: bytes, msg: email.message.Message) -> bytes:
    """`raw`, or, when a part of `msg` has too many header fields, or one too long or with a
    long line of non-ASCII text, the message written again with fewer fields a part (see
    `_ReaderGenerator`), cut and encoded (see `_AsWritten`): what to give a reader that parses
    the message again with the email package (parsedmarc, mailparser)."""
    if not any(len(part._headers) > READER_FIELDS or any(_too_long(value) for _, value in part._headers)
               for part in msg.walk()):
        return raw
    out = io.BytesIO()
    try:
        _ReaderGenerator(out, mangle_from_=False, policy=_FOR_READERS).flatten(msg)
    except (UnicodeError, LookupError, ValueError, TypeError):  # a boundary or charset that cannot be written
        return raw  # as it came: the reader parses it itself (under the parse budget)
    return out.getvalue()


# An address header is never this long; email.utils.getaddresses costs ~6 µs a character,
# and recurses once per level of nested comments.
ADDRESS_TEXT = 2000
COMMENT_DEPTH = 50


def addresses(value: str) -> list[tuple[str, str]]:
    """`email.utils.getaddresses([value])`, on at most ADDRESS_TEXT characters of `value`,
    and without its comments when they nest deeper than COMMENT_DEPTH."""
    value = value[:ADDRESS_TEXT]
    if value.count("(") > COMMENT_DEPTH:
        value = _without_deep_comments(value)
    return email.utils.getaddresses([value])


def _without_deep_comments(text: str) -> str:
    out, depth, deepest = [], 0, 0
    for ch in text:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(ch)
    return "".join(out) if deepest > COMMENT_DEPTH else text


def text_codec(charset) -> str | None:
    """The codec a charset parameter names, if it names a text encoding we can decode with."""
    if isinstance(charset, tuple):  # RFC 2231: (charset, language, value)
        charset = charset[2]
    if not isinstance(charset, str):
        return None
    name = charset.strip().strip('"').lower()
    if not name or not name.isascii() or not name.isprintable():
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # rot13, base64, zlib... are codecs but not text encodings; these raise whatever is given
    if not info._is_text_encoding or info.name in _NOT_FOR_TEXT:
        return None
    return info.name


_NOT_FOR_TEXT = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"})


def param_text(value) -> str:
    """A MIME parameter's value as text: the email package's collapse_rfc2231_value, which
    fails on an RFC 2231 charset that is no text codec (a NUL in its name, idna...)."""
    if isinstance(value, tuple) and len(value) == 3:
        charset, _, text = value
        if text_codec(charset or "us-ascii") is None:
            return email.utils.unquote(text)
        return decode_text(bytes(text, "raw-unicode-escape"), charset or "us-ascii")
    return email.utils.unquote(value)


def decode_text(data: bytes, charset, default: str = "utf-8") -> str:
    """`data` as text in the charset a message declares, never raising: an unknown or unusable
    charset reads as `default`, bytes that do not fit it as U+FFFD."""
    name = text_codec(charset)
    if name is not None:
        try:
            return data.decode(name, "replace")
        except (UnicodeError, ValueError, TypeError):
            pass
    return data.decode(default, "replace")
