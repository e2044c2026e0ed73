"""RFC 3834 automatic replies (vacation, out-of-office): recognised, then ignored.

The markers are the ones Sisimai's RFC3834 detector uses, plus the common vendor headers:
`Auto-Submitted: auto-replied` (RFC 3834), Exchange's `X-Auto-Response-Suppress` with OOF
or AutoReply, Apple's `X-Apple-Action: vacation`, `Precedence: auto_reply`, the
`X-Autoreply` family, and the subject prefixes that mail clients write. A DSN carries
`Auto-Submitted` too, so ingest/detect.py asks about bounces first.
"""
from __future__ import annotations

import email.message
import re
from email.header import Header, decode_header

from ingest.message import header_text

# header -> pattern on its lower-cased value
HEADER_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Auto-Submitted", re.compile(r"^auto-(generated|replied|notified)")),
    ("X-Auto-Response-Suppress", re.compile(r"oof|autoreply")),
    ("X-Apple-Action", re.compile(r"^vacation")),
    ("Precedence", re.compile(r"^auto_reply")),
    ("X-Autoreply", re.compile(r".")),
    ("X-Autorespond", re.compile(r".")),
    ("X-Autoresponder", re.compile(r".")),
    ("X-Vacation", re.compile(r".")),
    ("X-POST-MessageClass", re.compile(r"autoreply")),
)
SUBJECT = re.compile(
    r"^\s*(auto:|auto[ -]?(reply|response|respond|antwort|svar)\b|automatic (reply|response)|"
    r"out of (the )?office\b|ooo:|vacation (reply|notice|message|response)|"
    r"abwesenheit|r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica|"
    r"automatisch antwoord|autosvar|automaattinen vastaus|odpowied[źz] automatyczna|"
    r"automatick[áa] odpov[ěe]ď|自動応答|自动回复)",
    re.I)
# Sisimai's exclusions: system mail that carries the same markers but is no one's reply
EXCLUDE_SUBJECT = re.compile(r"security information for|mail failure -", re.I)
EXCLUDE_FROM = re.compile(r"(root|postmaster|mailer-daemon)@", re.I)


def _subject(msg: email.message.Message) -> str:
    """The Subject, RFC 2047-decoded, with raw 8-bit bytes read as UTF-8."""
    raw = msg.get("Subject")
    if isinstance(raw, Header):  # the email package's answer to undeclared 8-bit bytes
        try:
            return "".join(b.decode("utf-8", "replace") if isinstance(b, bytes) else b
                           for b, _ in decode_header(raw))
        except (ValueError, LookupError, UnicodeError):
            return str(raw)
    return header_text(msg, "Subject") or ""


def is_auto_reply(msg: email.message.Message) -> bool:
    subject = _subject(msg)
    if EXCLUDE_SUBJECT.search(subject) or EXCLUDE_FROM.search(str(msg.get("From") or "")):
        return False
    if str(msg.get("To") or "").lower().startswith("root@"):
        return False
    for name, pattern in HEADER_MARKERS:
        value = msg.get(name)
        if value is not None and pattern.search(str(value).strip().lower()):
            return True
    return bool(SUBJECT.match(subject))
