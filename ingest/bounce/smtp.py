"""Reading SMTP facts out of free text: status codes, reply codes, commands, addresses.

Every bounce format ends up quoting a receiver's reply somewhere; these helpers pull the
RFC 3463 status, the RFC 5321 reply code and the SMTP command it answered out of that text,
so the format readers only have to find the text.
"""
from __future__ import annotations

import functools
import re

from ingest.bounce.markers import LOCAL_CHAR, RunStartPattern

# RFC 3463 status inside text, most specific shape first (Sisimai's SMTP::Status order).
_STATUS_AFTER_CODE = re.compile(r"\b[45]\d\d[ -]['\"]?#?([45]\.\d{1,3}\.\d{1,3})\b")  # 550-5.1.1, 550 '5.7.1
_STATUS_PATTERNS = (
    re.compile(r"\(#([45]\.\d{1,3}\.\d{1,3})\)?"),  # qmail: (#5.1.1)
    re.compile(r"#([45]\.\d{1,3}\.\d{1,3})\b"),  # #5.1.1
    re.compile(r"(?<![\d.])([45]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)"),  # a bare 5.1.1
    re.compile(r"(?<![\d.])(2\.[0-7]\.[0-7])(?![\d.]*\d)"),  # 2.1.5, only when nothing failed
)
# IP addresses and versions hide false statuses. Tried only where a run of digits starts
# (the same matches: one that starts inside a run starts at the run's start too), so that a
# long run of digits costs its length, not its square.
_DOTTED = re.compile(r"(?<!\d)\d+(?:\.\d+){3,}")
_IPV4 = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")
_REPLY_AT_START = re.compile(r"^\W{0,3}([245][0-5]\d)(?:[ \-]|$)")
_REPLY_ANYWHERE = (re.compile(r"(?<![\w.#/=:-])([45][0-5]\d)(?:[ \-](?!\d+:\d)|$)"),
                   re.compile(r"\bERROR_CODE :([45][0-5]\d)\b"),  # Zoho: "ERROR_CODE :421, ..."
                   re.compile(r"(?<![\w.#/=:-])(25[0-3])(?:[ \-](?!\d+:\d)|$)"))
STATUS_FIELD = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")

# The SMTP command a reply answered, as MTAs describe it: first what the text says it
# answered ("in reply to RCPT TO command", "after end of data"), then what it mentions.
# Matched on lower-cased text, gated by plain substring tests: much cheaper than one regex.
_ANSWERED = re.compile(r"(?:in reply to|after|response to|for|did not like our) (?:the )?(?:our )?"
                       r"(end of data|final data|end of message|data|rcpt|mail|ehlo|helo|starttls|"
                       r"initial|message|body|connect)\b|\b(data|rcpt to|mail from|ehlo|helo|starttls) "
                       r"(?:command|response)\b|"
                       r"\bsmtp(?: command:? ?|:)(data|rcpt|mail|ehlo|helo)\b|"  # mFILTER, X3: "SMTP command DATA", "SMTP:RCPT"
                       r"\[(rcpt|mail)_(?:to|from)\]")  # Yahoo: "... User Unknown [RCPT_TO]"
_ANSWERED_GATE = ("in reply to", "after ", "response", "command", "did not like", "smtp:", "_to]", "_from]")
_ANSWERED_NAME = {"end of data": "DATA", "final data": "DATA", "end of message": "DATA", "data": "DATA",
                  "message": "DATA", "body": "DATA", "rcpt": "RCPT", "rcpt to": "RCPT", "mail": "MAIL",
                  "mail from": "MAIL", "ehlo": "EHLO", "helo": "HELO", "starttls": "STARTTLS",
                  "initial": "CONN", "connect": "CONN"}
_MENTIONED = (
    ("RCPT", ("rcpt to:",)),  # a quoted dialogue (">>> RCPT To:<...>") names what failed
    ("STARTTLS", ("starttls", "tls negotiation failed", "tls handshake failed")),
    ("CONN", ("while connecting", "connection refused", "connection timed out", "no smtp connection",
              "greeting", "banner", "could not connect", "unable to connect", "connect to ")),
    ("EHLO", ("ehlo ",)),
    ("HELO", ("helo ",)),
    ("MAIL", ("mail from", "does not like sender")),  # qmail
    ("RCPT", ("rcpt to", "does not like recipient")),  # qmail
    ("DATA", ("end of data", "while sending message", ">>> data", "failed after i sent the message")),
)

_ADDR = RunStartPattern(rf"(?#run){LOCAL_CHAR}+@[A-Za-z0-9][A-Za-z0-9.\-]*\.[A-Za-z0-9\-]{{2,}}"
                        rf"|(?#run){LOCAL_CHAR}+@\[\d{{1,3}}(?:\.\d{{1,3}}){{3}}\]", LOCAL_CHAR)
CACHED_TEXT = 4096  # longer texts are read again rather than kept


def _short_texts_cached(fn):
    """`fn(text)` with a cache of the last 512 texts no longer than CACHED_TEXT: a long
    text (a bounce's whole block) is read again, never kept, so the cache holds a few MB at
    most however long the bounces are."""
    cached = functools.lru_cache(maxsize=512)(fn)

    @functools.wraps(fn)
    def call(text):
        return fn(text) if text and len(text) > CACHED_TEXT else cached(text)

    call.cache_clear, call.cache_info = cached.cache_clear, cached.cache_info  # type: ignore[attr-defined]
    return call


_CONTINUATION = re.compile(r"^([245]\d\d)[ -](?:[245]\.\d{1,3}\.\d{1,3}\s+)?")


@_short_texts_cached  # the same diagnostic is read by several steps
def find_status(text: str | None) -> str | None:
    """The RFC 3463 status a text names, or None; an IP address or version is not one."""
    if not text or "." not in text:
        return None
    masked = _DOTTED.sub(" ", text) if _DOTTED.search(text) else text
    # A reply quoting another ("554 4.4.7 expired <421 4.4.2 timed out>") ends with the
    # receiver's own: the last specific status after a reply code, else the first of any.
    found = [(m.group(0)[:3], _valid_status(m.group(1))) for m in _STATUS_AFTER_CODE.finditer(masked)]
    after_code = [v for _, v in found if v]
    if len(after_code) > 1 and "503" in masked:
        # A pipelining client's DATA refused with "503 5.5.1 Need RCPT" only echoes that every
        # RCPT TO failed: the RCPT's own status is the one that says why (Sendmail transcripts).
        after_code = [v for code, v in found if v and not (code == "503" and v.startswith(("4.5.", "5.5.")))] \
            or after_code
    if after_code:
        specific = [v for v in after_code if not v.endswith(".0.0")]
        return specific[-1] if specific else after_code[0]
    for pattern in _STATUS_PATTERNS:
        m = pattern.search(masked)
        if m:
            return _valid_status(m.group(1))
    return None


def _valid_status(value: str) -> str | None:
    klass, subject, detail = value.split(".")
    if int(subject) > 9:
        return None
    return f"{klass}.{int(subject)}.{int(detail)}"


def status_field(value: str | None) -> str | None:
    """The status of a DSN `Status:` field ("5.1.1 (user unknown)" -> "5.1.1")."""
    if not value:
        return None
    m = STATUS_FIELD.match(value)
    if not m:
        return None
    return _valid_status(f"{m.group(1)}.{m.group(2)}.{m.group(3)}")


def prefer_status(field: str | None, said: str | None, code: str | None) -> str | None:
    """The status to keep when the DSN's `Status:` field and the receiver's text differ.

    Sisimai's rule (smtp/status Prefer): the one whose class the reply code shares; then the
    text over a field of the X.0.0 or X.Y.0 kind, over the codes relays use for any failure
    (4.4.7 expired, 4.7.0, 5.3.x, X.5.1/2/4/5 command errors) and over a 5.1.1 the text
    makes more precise; otherwise the field.
    """
    if not field or not said:
        return field or said
    if field == said:
        return field
    if code and field[0] != said[0] and code[0] in (field[0], said[0]):
        return field if code[0] == field[0] else said
    if field.endswith(".0.0"):
        return field if said.endswith(".0.0") else said
    if ".0" in field and ".0" not in said:
        return said
    if said.endswith(".0.0"):
        return field
    if field in ("4.4.7", "4.7.0") or field.startswith("5.3.") or field[1:4] in (".5.1", ".5.2", ".5.4", ".5.5"):
        return said
    if field == "5.1.1":
        return field if ".0" in said or said.startswith("5.5.") else said
    if field == "5.1.3" and said.startswith("5.7."):
        return said
    return field


@_short_texts_cached  # the same diagnostic is read by several steps
def find_reply_code(text: str | None) -> str | None:
    """The SMTP reply code a diagnostic carries: the leading one, else the first one in it."""
    if not text:
        return None
    m = _REPLY_AT_START.match(text)
    if m:
        return m.group(1)
    masked = _IPV4.sub(" ", text) if "." in text else text
    for pattern in _REPLY_ANYWHERE:
        m = pattern.search(masked)
        if m:
            return m.group(1)
    return None


@_short_texts_cached  # the same diagnostic is read by several steps
def find_command(text: str | None) -> str | None:
    if not text:
        return None
    low = text.lower()
    if any(gate in low for gate in _ANSWERED_GATE):
        m = _ANSWERED.search(low)
        if m:
            return _ANSWERED_NAME[next(g for g in m.groups() if g)]
    for name, words in _MENTIONED:
        if any(w in low for w in words):
            return name
    return None


def find_addresses(text: str) -> list[str]:
    return [clean_address(a) for a in _ADDR.findall(text)]


def clean_address(value: str | None) -> str | None:
    """One e-mail address, lower-cased, without brackets, quotes, `rfc822;` or trailing dots."""
    if not value:
        return None
    value = value.strip()
    if ";" in value:
        value = value.split(";", 1)[1].strip()
    m = _ADDR.search(value)
    if m:
        value = m.group(0)
    else:
        value = value.strip("<>\"' \t")
        if not value or " " in value:
            return None
    value = value.strip(".").lower()
    if value.startswith("mailto:"):
        value = value[7:]
    if "smtp=" in value:  # X.400 gateways: "...;dda:SMTP=user@example.com"
        value = value.rsplit("smtp=", 1)[1]
    return value or None


def is_address(value: str | None) -> bool:
    return bool(value) and "@" in value and bool(_ADDR.fullmatch(value))  # type: ignore[arg-type]


def unfold(text: str) -> str:
    """Multi-line SMTP replies as one line: "550-5.1.1 a\n550 5.1.1 b" -> "550 5.1.1 a b"."""
    out: list[str] = []
    run = None  # the reply code of the multi-line reply being read
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        m = _CONTINUATION.match(line)
        if m and m.group(1) == run:
            line = line[m.end():]
        elif m:
            run = m.group(1)
            if line[3:4] == "-":
                line = line[:3] + " " + line[4:]
        else:
            run = None
        if line:
            out.append(line)
    return " ".join(" ".join(out).split())


def squash(text: str) -> str:
    return " ".join(text.split())
