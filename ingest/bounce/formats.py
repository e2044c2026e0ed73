"""Bounce formats whose layout the generic reader cannot follow, and how to tell them.

`reader_for` picks a reader by the markers a format writes; a reader returns the same
`Block`s the generic reader does, so the rest of the pipeline never knows which ran.
"""
from __future__ import annotations

import email.message
import re
from typing import Callable

from ingest.bounce.ses import MARKER as SES_MARKER
from ingest.bounce.text import Block, Reading, read_blocks

Reader = Callable[[str, frozenset, email.message.Message], Reading]

# Opening lines of bounces, by MTA: enough to call a message a bounce from its body alone.
# `[>\s]*` but within the line: the opening is searched line by line, and a run of blank
# lines would otherwise be read again from each of them.
STARTS = re.compile(r"^(?:>|[^\S\n])*(?:" + "|".join((
    r"This message was created automatically by mail delivery software",  # Exim, GMX, mail.ru
    r"Hi\. This is the qmail",  # qmail
    r"This is the (?:Postfix|mail system|MAILER-DAEMON|DragonFly Mail Agent|mail delivery agent|"
    r"machine generated message from mail service)",
    r"Delivery to the following recipients? (?:failed|has been delayed)",  # Gmail
    r"Sorry, we were unable to deliver your message",  # Yahoo
    r"Unable to deliver message to the following address",  # X2
    r"The original message was received at",  # Sendmail
    r"-+ ?The following addresses had (?:permanent fatal errors|delivery problems)",
    r"-+ ?Transcript of session follows",
    r"Your message could not be (?:delivered|sent)",
    r"This report relates to a message you sent",  # MessagingServer
    r"Delivery has failed to these recipients or groups",  # Office 365
    r"Your message did not reach some or all of the intended recipients",  # Exchange 2003
    r"This is an automatically generated Delivery Status Notification",
    r"The following message to <",  # Amazon SES
    r"An error occurred while trying to deliver the mail",
    r"Technical report:",  # WorkMail
    r"Unable to deliver message to:",  # MailFoundry
    r"Your mail (?:sent on|attempted to be delivered on)",  # KDDI
    r"-+ ?Failure Reasons",  # Notes
    r"\d+ error\(s\):",  # X6
    r"Body of message generated response:",  # IMail
    r"UNDELIVERABLE MAIL|DELAYS IN DELIVERING YOUR MESSAGE",  # Courier
    r"Hello, this is the mail server on",  # PowerMTA
    r"Could not be delivered because of",  # MailMarshal
    r"This is an automatically generated message from SendGrid",
    r"Message delivery has failed",
)) + r")", re.M | re.I)


def has_marker(msg: email.message.Message) -> bool:
    if is_fml(msg):
        return True
    text = _first_text(msg)
    return bool(text) and bool(STARTS.search(text[:4000]) or SES_MARKER.search(text))


def _first_text(msg: email.message.Message) -> str:
    for part in msg.walk():
        if part.get_content_maintype() == "text" or part.get_content_maintype() == "multipart" and \
                isinstance(part.get_payload(), str):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload[:4000].decode("utf-8", "replace")
            return ""
        if part.get_content_type() == "message/rfc822":
            return ""
    return ""


_FML_ADDRESS = re.compile(r"<([^ <>@]+@[^ <>]+)>\.\s*$")


def _fml(human: str, senders: frozenset, msg: email.message.Message) -> Reading:
    """fml (a mailing-list manager) refuses a post: the list's address ends a sentence."""
    blocks: list[Block] = []
    for line in human.split("\n"):
        m = _FML_ADDRESS.search(line)
        if m and not blocks:
            blocks.append(Block(m.group(1).lower(), [line]))
        elif blocks:
            blocks[-1].lines.append(line)
    return Reading(blocks)


def is_fml(msg: email.message.Message) -> bool:
    return str(msg.get("X-MLServer") or "").lower().startswith("fml")


_OPENSMTPD_MARK = "This is the MAILER-DAEMON, please DO NOT REPLY to this e"  # smtpd/bounce.c
_OPENSMTPD_LINE = re.compile(r"^([^\s@:<>]+@[^\s:<>]+): (.+)$")
# Exim's deliver.c: the opening line, then "The following address(es) failed" (a bounce) or
# "has not yet been delivered to one or more of its recipients" (a delay warning).
_EXIM_OPENING = "This message was created automatically by mail delivery software"
_EXIM_BODY = ("address(es) failed", "has not yet been delivered to one or more of its")


_NOTES_MARK = re.compile(r"^-+ *Failure Reasons *-+[ \t]*$", re.M)
_BARE_ADDRESS = re.compile(r"^\s*<?([^\s@<>]+@[^\s<>]+?)>?\s*$")


# Apache James's bounce mailet (also behind Verizon's vtext.com): the receiver's reply under
# "Error message below:", then the returned message summarised under "Message details:",
# where "RCPT TO:" names the recipient -- a summary line, not the SMTP command that failed.
_JAMES_ERROR = re.compile(r"^Error message below:[ \t]*$", re.M)
_JAMES_DETAILS = re.compile(r"^Message details:[ \t]*$", re.M)
_JAMES_RCPT = re.compile(r"^[ \t]+RCPT TO:[ \t]*<?([^\s<>]+@[^\s<>]+?)>?[ \t]*$", re.M)


def _james(human: str, senders: frozenset, msg: email.message.Message) -> Reading:
    error, details = _JAMES_ERROR.search(human), _JAMES_DETAILS.search(human)
    if error is None or details is None or details.start() < error.end():
        return read_blocks(human, senders)
    said = [ln for ln in human[error.end():details.start()].split("\n") if ln.strip()]
    listed = dict.fromkeys(a.lower() for a in _JAMES_RCPT.findall(human[details.end():]))
    return Reading([Block(a, list(said)) for a in listed]) if listed else read_blocks(human, senders)


def format_of(msg: email.message.Message, human: str) -> str | None:
    """The MTA whose layout (and whose way of stating a status) a bounce follows, when it matters."""
    if is_fml(msg):
        return "fml"
    if "Message details:" in human and "Error message below:" in human:
        return "james"
    if "Failure Reasons" in human and _NOTES_MARK.search(human):
        return "notes"
    if _OPENSMTPD_MARK in human:
        return "opensmtpd"
    if _EXIM_OPENING in human and any(b in human for b in _EXIM_BODY):
        return "exim"
    return None


def _opensmtpd(human: str, senders: frozenset, msg: email.message.Message) -> Reading:
    """OpenSMTPD lists one recipient a line at the margin, "addr: what the receiver said";
    its indented lines are notices for every recipient, not anyone's diagnostic."""
    blocks = [Block(m.group(1).lower(), [m.group(2)]) for m in map(_OPENSMTPD_LINE.match, human.split("\n")) if m]
    return Reading(blocks) if blocks else read_blocks(human, senders)


def _notes(human: str, senders: frozenset, msg: email.message.Message) -> Reading:
    """Lotus Notes states the reason first, then the address it failed for, under
    "Failure Reasons": the lines above an address are what was said about it."""
    m = _NOTES_MARK.search(human)
    blocks: list[Block] = []
    said: list[str] = []
    for line in human[m.end():].split("\n") if m else ():
        found = _BARE_ADDRESS.match(line)
        if found:
            blocks.append(Block(found.group(1).lower(), said))
            said = []
        elif line.strip():
            said.append(line)
    return Reading(blocks) if blocks else read_blocks(human, senders)


def reader_for(fmt: str | None) -> Reader | None:
    return {"fml": _fml, "opensmtpd": _opensmtpd, "notes": _notes, "james": _james}.get(fmt or "")


# OpenSMTPD's own delivery-status part states what it made up (x.0.0, 4.4.7 when the
# envelope expired), never the receiver's status; Sisimai reads the text alone.
IGNORES_OWN_DSN = frozenset({"opensmtpd"})

# Statuses Sisimai's Status.Prefer ranks below its own code for the reason: they name the
# class of failure, not the failure.
_VAGUE_STATUS = re.compile(r"^(?:[45]\.0\.0|4\.4\.7|4\.7\.0|5\.3\.\d+|[45]\.5\.[1245])$")


def exim_status(said: str | None, reason: str, command: str | None, reply_code: str | None,
                pseudo: Callable[[str, bool], str | None]) -> str | None:
    """The status of an Exim text bounce, as Sisimai's Exim reader states it.

    Exim names no status of its own. A refusal of MAIL FROM is held (onhold), one at
    EHLO/HELO is blocked, anything else takes the reason; the code is temporary when the
    reply was 4xx or the message expired or met a full mailbox. A status the receiver
    quoted stands unless it is one of the vague ones.
    """
    if said and not _VAGUE_STATUS.match(said):
        return said
    first = "onhold" if command == "MAIL" else "blocked" if command in ("EHLO", "HELO") else reason
    temporary = (reply_code or "").startswith("4") or first in ("expired", "mailboxfull")
    return pseudo(first, temporary) or said


__all__ = ["IGNORES_OWN_DSN", "STARTS", "exim_status", "format_of", "has_marker", "reader_for", "read_blocks"]
