"""The human-readable part of a bounce: which recipients it names, and what was said about each.

MTAs that send no delivery-status part (qmail, Exim, Gmail, Yahoo, DragonFly, many
appliances) — and many that do but hide the receiver's real reply in prose (Sendmail,
Postfix, Exchange) — share one layout: a preamble, then per recipient an address in a
recognisable position followed by the error lines, then a marker that starts the copy of the
original message. The markers are data, in `ingest/bounce/markers.py`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ingest.bounce.markers import (
    ADDRESS, AFTER_ADDRESS, BOILERPLATE, GENERIC_LABEL, LINE_START, NOT_A_RECIPIENT_LINE,
    PROSE_AFTER, SENDMAIL_REPLY,
    RETURNED_MESSAGE, SKIP_LINE, phrase_before,
)
from ingest.bounce.smtp import clean_address, is_address


@dataclass
class Block:
    """One recipient as the text names it, and the lines said about it."""

    recipient: str
    lines: list[str] = field(default_factory=list)


# How much of a line the readers look at. SMTP keeps a reply line to 512 characters (RFC
# 5321 4.5.3.1.5); the longest lines of real bounces are Exchange's prose (~750) and SES
# notifications' JSON (~1,040, read whole by ingest/bounce/ses.py before any cut). A line
# is read as far as a diagnostic is kept (extract.MAX_DIAGNOSTIC), and what lies beyond
# is never matched: the readers' patterns then cost at most this much per line, whatever
# one line of a hostile bounce holds.
MAX_LINE = 2000


def cut_lines(text: str, most: int = MAX_LINE) -> str:
    """`text` with each line cut to its first `most` characters (the same text when none is longer)."""
    if len(text) <= most:
        return text
    lines = text.split("\n")
    if max(map(len, lines)) <= most:
        return text
    return "\n".join(line[:most] for line in lines)


def cut_returned(text: str) -> str:
    """The text before the copy of the original message starts."""
    m = RETURNED_MESSAGE.search(text)
    if m is None:
        return text
    start = m.start()
    if m.group("hops") is not None:  # Office 365's table starts with the blank lines above it
        while start > 0:
            above = text.rfind("\n", 0, start - 1) + 1
            if text[above:start - 1].strip():
                break
            start = above
    return text[:start]


def _rest(line: str, end: int) -> str:
    after = AFTER_ADDRESS.match(line, end)
    return after.group("rest") if after else ""


def recipient_in(line: str) -> tuple[str, str] | None:
    """(address, rest of the line) when a line names a recipient in a recipient's position.

    Each address is judged by the text before it, matched in place (never copied) and
    only as far back as a pattern can reach, so that a line of many addresses costs its
    length, not its length times the number of addresses.
    """
    head = LINE_START.match(line).end()  # no line start reaches further (its parts are greedy)
    for m in ADDRESS.finditer(line):
        start = m.start()
        if SENDMAIL_REPLY.fullmatch(line, 0, start) and line.startswith("...", m.end()):
            rest = TRANSCRIPT_MARK + line
        elif start <= head and LINE_START.fullmatch(line, 0, start):
            rest = _rest(line, m.end())
            if NOT_A_RECIPIENT_LINE.search(rest) or (PROSE_AFTER.match(rest) and not line[start] == "<"):
                return None
        elif not phrase_before(line[max(0, start - 90):start]):
            continue
        elif GENERIC_LABEL.match(line, 0, start) and _rest(line, m.end()).strip(" \t.>"):
            continue  # "Label: address" counts only when the address ends the line
        else:
            rest = line  # the sentence that names the recipient says what happened to it
        address = clean_address(m.group(1))
        if is_address(address):
            return address, rest.strip(" \t:>")  # type: ignore[return-value]
    return None


TRANSCRIPT_MARK = "\x00transcript\x00"  # a block opened by a transcript's reply line
LISTED = re.compile(r"following addresses? (?:had|has) (?:permanent|transient|delivery)", re.I)


@dataclass
class Reading:
    """What a reader found: the recipients' blocks, and the lines before the first one."""

    blocks: list[Block]
    preamble: list[str] = field(default_factory=list)


def read_blocks(text: str, senders: frozenset[str] = frozenset()) -> Reading:
    """Every recipient the text names, in order, each with the lines that follow it.

    A bounce goes back to the sender, and its text often greets or quotes them: an address
    of `senders` is dropped, unless it is the only one the text names (mail to oneself).
    """
    blocks, preamble = _scan(text)
    if LISTED.search(text):  # Sendmail listed who failed; its transcript may name aliases' targets
        blocks = [b for b in blocks if not (b.lines and b.lines[0].startswith(TRANSCRIPT_MARK))]
    for b in blocks:
        b.lines = [ln.replace(TRANSCRIPT_MARK, "") for ln in b.lines]
    others = [b for b in blocks if b.recipient not in senders]
    return Reading(others or blocks, preamble)


def unquote(text: str) -> str:
    """A bounce forwarded inline ("> " on every line) as the bounce itself."""
    lines = text.split("\n")
    quoted = sum(1 for ln in lines if ln.startswith(">"))
    if quoted < 5 or quoted * 2 < len([ln for ln in lines if ln.strip()]):
        return text
    return "\n".join(ln[2:] if ln.startswith("> ") else ln[1:] if ln.startswith(">") else ln for ln in lines)


def _scan(text: str) -> tuple[list[Block], list[str]]:
    blocks: list[Block] = []
    preamble: list[str] = []
    by_recipient: dict[str, Block] = {}
    current: Block | None = None
    # Sendmail's transcript ("While talking to HOST:", ">>> COMMAND", "<<< reply", then one
    # "NNN <rcpt>... text" line per recipient): the receiver's reply and the lines about a
    # host come *before* the recipient line they explain, so after a recipient's line the
    # transcript's lines wait for the next recipient; a new "While talking to" leaves the
    # waiting lines to no recipient.
    pending: list[str] | None = None
    after_mail_from = False  # the reply to ">>> MAIL From:" names the sender, not a recipient
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(">>>"):
            after_mail_from = _MAIL_FROM.match(stripped) is not None
        if "@" in stripped and not SKIP_LINE.match(stripped) and not (
                after_mail_from and stripped.startswith("<<<")):
            found = recipient_in(stripped)
            if found:
                address, rest = found
                block = by_recipient.get(address)
                if block is None:
                    block = by_recipient[address] = Block(address)
                    blocks.append(block)
                elif current is not block:
                    block.lines.append("")  # the same recipient named again: a second account of it
                current = block
                if pending:
                    current.lines.extend(pending)
                pending = [] if rest.startswith(TRANSCRIPT_MARK) else None
                if rest:
                    current.lines.append(rest)
                continue
        if pending is None and current is None and _TALKING_TO.match(stripped):
            pending = []  # the session before the first recipient's line
        if pending is not None:
            if _TALKING_TO.match(stripped):
                preamble.extend(pending)
                pending = []
            if pending or _TRANSCRIPT_LINE.match(stripped):
                pending.append(line)
                continue
        if current is not None:
            current.lines.append(line)
        else:
            preamble.append(line)
    if pending and current is not None:
        current.lines.extend(pending)
    return blocks, preamble


_MAIL_FROM = re.compile(r">>>\s*mail from:", re.I)
_TALKING_TO = re.compile(r"(?:\.\.\.\s*)?while talking to\b", re.I)
# A transcript's own line: a command sent, a reply received, a host's or recipient's error line.
_TRANSCRIPT_LINE = re.compile(r"(?:>>>|<<<|[245]\d\d[ -].*\.\.\.|(?:\.\.\.\s*)?while talking to\b)", re.I)


_EXPANDED = re.compile(r"^\s*\(?(?:expanded|generated) from:?\s*<?([^\s<>()]+@[^\s<>()]+?)>?\)", re.I)


_BARE_HEADING = re.compile(r"following (?:recipients?|address(?:es|\(es\))?)\b.*:\s*$", re.I)
_BARE_NAME = re.compile(r"^[ \t]+([A-Za-z0-9][\w.+-]{0,63})[ \t]*$")


def bare_names(text: str) -> list[str]:
    """Local parts listed without a domain under a "following recipients:" heading (AOL)."""
    names: list[str] = []
    under = False
    for line in text.split("\n"):
        if _BARE_HEADING.search(line):
            under = True
            continue
        if under:
            m = _BARE_NAME.match(line)
            if m:
                names.append(m.group(1).lower())
            elif line.strip():
                under = False
    return names


def expanded_from(block: Block) -> str | None:
    """The address the sender used, when the MTA names the alias it expanded (Sendmail, Postfix)."""
    for line in block.lines[:3]:
        m = _EXPANDED.search(line)
        if m:
            return clean_address(m.group(1))
    return None


def block_text(lines: list[str]) -> str:
    """The lines of a block that say something: boilerplate and copy markers left out."""
    keep: list[str] = []
    for line in lines:
        stripped = line.strip()
        if not stripped:
            if keep and keep[-1]:
                keep.append("")
            continue
        if BOILERPLATE.search(stripped):
            continue
        keep.append(stripped)
    while keep and not keep[-1]:
        keep.pop()
    return "\n".join(keep)
