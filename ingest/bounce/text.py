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
    ADDRESS_LINE, ADDRESS_PHRASE, BOILERPLATE, NOT_A_RECIPIENT_LINE, RETURNED_MESSAGE, SKIP_LINE,
)
from ingest.bounce.smtp import clean_address, is_address


@dataclass
class Block:
    """One recipient as the text names it, and the lines said about it."""

    recipient: str
    lines: list[str] = field(default_factory=list)


def cut_returned(text: str) -> str:
    """The text before the copy of the original message starts."""
    m = RETURNED_MESSAGE.search(text)
    return text[:m.start()] if m else text


def recipient_in(line: str) -> tuple[str, str] | None:
    """(address, rest of the line) when a line names a recipient in a recipient's position."""
    m = ADDRESS_LINE.match(line)
    if m is None:
        m = ADDRESS_PHRASE.search(line)
        if m is None:
            return None
        rest = line[m.end():]
    else:
        rest = m.group("rest") or ""
        if NOT_A_RECIPIENT_LINE.search(rest):
            return None
    address = clean_address(m.group("addr"))
    if not is_address(address):
        return None
    return address, rest.strip(" \t:>")  # type: ignore[return-value]


def read_blocks(text: str, senders: frozenset[str] = frozenset()) -> list[Block]:
    """Every recipient the text names, in order, each with the lines that follow it."""
    blocks: list[Block] = []
    by_recipient: dict[str, Block] = {}
    current: Block | None = None
    for line in text.split("\n"):
        stripped = line.strip()
        if "@" in stripped and not SKIP_LINE.match(stripped):
            found = recipient_in(stripped)
            if found and found[0] not in senders:
                address, rest = found
                block = by_recipient.get(address)
                if block is None:
                    block = by_recipient[address] = Block(address)
                    blocks.append(block)
                elif current is not block:
                    block.lines.append("")  # the same recipient named again: a second account of it
                current = block
                if rest:
                    current.lines.append(rest)
                continue
        if current is not None:
            current.lines.append(line)
    return blocks


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
