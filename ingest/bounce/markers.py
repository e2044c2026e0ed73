"""Where bounce texts put things, as data: the markers MTAs write, compiled once.

Each pattern names the MTAs that write it, so a marker can be traced to a format, never to
one message. Sisimai's Lhost modules (BSD-2) are the map these were read from.
"""
from __future__ import annotations

import re
import sys

from ingest.bounce.matcher import literal_of

LOCAL_CHAR = r"[^\s<>()\[\]\"',;:@]"  # a character of an address's local part
_ADDR = r"(?#run)" + LOCAL_CHAR + r"+@[A-Za-z0-9][A-Za-z0-9.\-]*\.[A-Za-z0-9\-]{2,}"


class RunStartPattern:
    """`re.compile(pattern)` for a pattern that starts with a run of one character class
    (an address's local part), searched in time linear in the text.

    `re` tries a pattern at every position. Inside a long run of the class that the rest of
    the pattern does not follow (a line of digits, dots or dashes), each try reads the rest
    of the run before it fails, and one search costs the square of the run. A match that
    would start inside a run starts one character earlier too, so the leftmost match starts
    where the search starts or after a character outside the class: the pattern is tried
    where the search starts, then searched with a lookbehind that skips the positions inside
    a run. The matches are the same, in the same order. `pattern` marks with `(?#run)` (a
    regex comment) each place where the run starts; what comes before a mark must match
    nothing, or characters outside the class.
    """

    def __init__(self, pattern: str, run: str, flags: int = 0) -> None:
        self.plain = re.compile(pattern, flags)
        self._skipping = re.compile(pattern.replace("(?#run)", f"(?<!{run})"), flags)
        self._in_run = re.compile(run, flags).match
        self.pattern, self.flags = self.plain.pattern, self.plain.flags
        self.match, self.fullmatch = self.plain.match, self.plain.fullmatch

    def search(self, string: str, pos: int = 0) -> re.Match | None:
        if pos > 0 and self._in_run(string, pos - 1):
            m = self.plain.match(string, pos)
            if m is not None:
                return m
        return self._skipping.search(string, pos)

    def finditer(self, string: str):
        pos = 0
        while True:
            m = self.search(string, pos)
            if m is None:
                return
            yield m
            pos = m.end() if m.end() > m.start() else m.end() + 1

    def findall(self, string: str) -> list:
        """As `re.findall`: the whole matches, the one group's, or tuples of the groups."""
        groups = self.plain.groups
        if groups == 0:
            return [m.group(0) for m in self.finditer(string)]
        if groups == 1:
            return [m.group(1) or "" for m in self.finditer(string)]
        return [tuple(g or "" for g in m.groups()) for m in self.finditer(string)]


class LineStartPattern:
    """`re.compile("^(?:" + alternatives + ")", re.M | flags)`, searched faster.

    `re` tries a pattern that starts with `^` at every position of the text, each try a call
    into the matcher. The same alternatives behind a newline start with a plain character,
    which `re` looks for with a quick scan: the first line start where they match is found
    that way, and the match made there is the one the anchored pattern makes.
    """

    def __init__(self, alternatives: str, flags: int = 0) -> None:
        self.anchored = re.compile(f"^(?:{alternatives})", re.M | flags)
        self._after_newline = re.compile(f"\n(?:{alternatives})", re.M | flags)
        self.pattern, self.flags = self.anchored.pattern, self.anchored.flags

    def search(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match | None:
        if pos <= 0:
            m = self.anchored.match(string, 0, endpos)
            if m is not None:
                return m
            pos = 1
        m = self._after_newline.search(string, pos - 1, endpos)
        return None if m is None else self.anchored.match(string, m.start() + 1, endpos)

    def match(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match | None:
        return self.anchored.match(string, pos, endpos)


def boundary_once(alternatives: tuple[str, ...]) -> str:
    """The alternation of `alternatives`, each run of those that start with \\b written as
    \\b(?:a|b|...): the same matches in the same order, but `re` tests the word boundary once
    per position instead of once per alternative (several times faster)."""
    runs: list[list[str]] = []
    for alt in alternatives:
        if alt.startswith(r"\b") and runs and runs[-1][0].startswith(r"\b"):
            runs[-1].append(alt)
        else:
            runs.append([alt])
    return "|".join(r"\b(?:" + "|".join(a[2:] for a in run) + ")" if run[0].startswith(r"\b") else run[0]
                    for run in runs)


# The line where the copy of the original message (or its headers) starts.
RETURNED_MESSAGE = LineStartPattern("|".join((
    r"[ \t]*-+ ?This is a copy of (?:the|your) message",  # Exim, mail.ru
    r"[ \t]*-+ ?This is a copy of the (?:body of the )?message",  # Exim, body only
    r"[ \t]*-{2,} ?(?:Original message|Original Message|Message header follows|Message headers follow|"
    r"Unsent message (?:follows|below)|No message was collected|Returned mail follows|"
    r"Returned Message|Below this line is a copy of the message|Original message follows|"
    r"The header of the original message is following|original (?:message|mail info)|"
    r"Original mail header|Header of the original message)",  # Sendmail, qmail, Gmail, GMX, mFILTER...
    r"[ \t]*-{5,}\s*$\n(?=(?:Return-Path|Received|From|Message-ID|Date|Subject|To|X-[\w-]+):)",  # EZweb
    r"Message headers follow",  # DragonFly
    r"Original message headers:",  # Exchange 2007, Office 365
    r"En-t.tes de message d'origine",  # Exchange 2007 (fr)
    r"Intestazioni originali del messaggio",  # Exchange 2007 (it)
    r"Included is a copy of the message header:",  # MXLogic
    r"Original mail as follows:",  # FML
    r"Original message as received is as follows",
    r"Original message follows\.",  # IMail
    r"[ \t]+Below is a copy of the original message:",  # OpenSMTPD
    r"The attachment contains the original mail headers",  # X6
    r"Your message reads \(in part\):",
    r"Content-Type:[ \t]*(?:message/rfc822|text/rfc822-headers|message/partial)",  # inline parts
    r"Return-Path:[ \t]*<",  # the returned headers, with no marker before them
    r"Received:[ \t]*(?:from|by)[ \t]",
    r"[ \t]*\+{3,}[ \t]*",  # MailMarshal
    # Office 365. Found on its own line (`\s*` would read the blank lines above it again from
    # each of them: their square); text.cut_returned adds the blank lines above it.
    r"[^\S\n]*(?P<hops>Message Hops)\b",
)), re.I)

# Where a recipient address sits. The address is found first (ADDRESS); what comes before it
# on its line decides whether it is a recipient:
#   kijitora@example.jp                      Exim, Gmail, Sendmail, mFILTER
#   <kijitora@example.jp>:                   qmail, Yahoo, X4
#   <kijitora@example.jp>: host mx said: ... Postfix
#   "Name" <kijitora@example.jp>             Exchange;  "kijitora@example.jp":  GMX
ADDRESS = RunStartPattern(r"<?(" + _ADDR + r")>?", LOCAL_CHAR)
LINE_START = re.compile(r"[ \t]*(?:[*\u2022-][ \t]+)?(?:\"[^\"]*\"[ \t]*|'[^']*'[ \t]*)?(?:rfc822;[ \t]*)?[\"']?<?", re.I)
# Sendmail's per-recipient line in a transcript: "550 <user@example.org>... User unknown".
SENDMAIL_REPLY = re.compile(r"[ \t]*(?:<<<[ \t]*)?[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}[ \t]+)?<?")
AFTER_ADDRESS = re.compile(r"(?:\.{3}|[\"'])?(?P<rest>(?:[\s:,].*)?)$")

# A phrase that puts a recipient address right after it (matched on the text before it).
PHRASES_BEFORE = (
    r"\b(?:final|original)-recipient:\s*(?:rfc822;\s*)?",  # DSN fields quoted in text
    r"^\s*(?:recipient|address|e-?mail address|rcpt|destinat[a-z]+|adresse|empf.nger):\s*",
    r"\baddressed to\s+",
    r"\bcould not be delivered to:?\s+",
    r"\bdelivering (?:your )?(?:mail|message) to\s+",  # DragonFly
    r"\bdelivery (?:failed|has failed|to the following recipient failed[a-z ]*):?\s*",
    r"\bdid not reach the following recipient(?:\(s\))?:\s*",
    r"\berror-for:\s+",
    r"\bfailed recipient:\s*",
    r"\bfailed to deliver to\s+",
    r"\bintended recipient:\s*",
    r"\bmailbox is full:\s*",
    r"\b(?:quota (?:violation|exceeded)|over quota|mailbox (?:is )?full) for\s+",  # a forward's target
    r"\brejected recipient\s+",
    r"\bthe following recipients returned permanent errors:\s*",
    r"\bthe following (?:message|e-?mail) to\s+",  # Amazon SES
    r"\bunknown user:?\s+",
    r"\bundeliverable\s+(?:to|address:?)\s*",
    r"\bwas addressed,\s*",  # LLNL
    r"\bunable to deliver (?:the )?(?:message|mail) to:?\s+",  # MailFoundry
    r"\byou sent mail to\s+",
    r"\byour (?:message|mail|e-?mail) (?:to|for)\s+",
    r"\bwas not delivered to:?\s+",
    r"\bwasn't delivered to\s+",
    r"\bnot be delivered to\s+",
    r"\bcould not deliver (?:mail|the message) to\s+",
    r"\bsent to\s+",
    r"\bnon-?existent\s+(?:address|user)?:?\s*",
    r"\brcpt to:\s*",  # a quoted SMTP dialogue: InterScan, V5 Sendmail, Postfix transcripts
    r"^\s*[a-z][^:@<>\"]{2,60}:\s*",  # IMail "Unknown user: a@b" (only with nothing after the address)
)
PHRASE_BEFORE = re.compile(r"(?:" + boundary_once(PHRASES_BEFORE) + r")['\"]?<?$", re.I)
# What a text must contain for one of the phrases to be in it: each phrase's literal run
# (the two without one of three letters hold a ":"), without those that hold another. The
# search costs ~15 µs on the 90 characters before an address, these tests a sixth of that:
# a line of a hundred addresses that are no recipient's asks for each of them.
_PHRASE_KEYS = [literal_of(p) or ":" for p in PHRASES_BEFORE]
_PHRASE_KEYS = tuple(dict.fromkeys(k for k in _PHRASE_KEYS if not any(o != k and o in k for o in _PHRASE_KEYS)))


def phrase_before(text: str) -> re.Match | None:
    """PHRASE_BEFORE.search(text), answered without a search when no phrase can be there."""
    folded = text.casefold().replace("\u0131", "i")  # what re.I takes for one letter, made one
    if not any(key in folded for key in _PHRASE_KEYS):
        return None
    return PHRASE_BEFORE.search(text)
GENERIC_LABEL = re.compile(r"^\s*[a-z][^:@<>\"]{2,60}:\s*['\"]?<?$", re.I)

# After an address at the start of a line: this line is about the sender, not a recipient.
NOT_A_RECIPIENT_LINE = re.compile(r"sender ok|sender address|\.\.\. sender\b|^\s*\(?sent by\b|"
                                  r"^\s*wrote:", re.I)

# After an address that starts a line: prose ("a@b fails, try ..."), not a recipient's report.
PROSE_AFTER = re.compile(r" (?!on |for |via |at |to )[a-z]+[ ,.]")

# Lines that mention addresses but never name a failed recipient.
SKIP_LINE = re.compile(r"(?:from|reply-to|sender|return-path|message-id|in-reply-to|references|"
                       r"envelope-from|x-[\w-]+|subject|date|received|cc|bcc|dkim-signature|"
                       r"authentication-results|list-[\w-]+)\s*:|"
                       r"\(?envelope-from\b|mail from\s*:", re.I)

# Lines that say nothing about why a recipient failed.
BOILERPLATE = re.compile(r"^(?:[-=_*~#+ ]{3,}|\[?-- ?(?:attachment|end) .*|content-[\w-]+:.*|"
                         r"--[-=_.\w/+]{6,}(?:--)?|"  # a MIME boundary left in the text
                         r"(?:from|to|cc|subject|date|sent date|size|size \(in bytes\)|number of lines|"
                         r"message-id|original sender|sender-mta|messagename):.*)$", re.I)
