"""Reading the recipients of a bounce: who bounced, what the receiver said, and where.

One walk over the message sorts its parts: delivery-status fields (RFC 3464/6533), the
human-readable text, and the returned original. The delivery-status part is trusted for
who and the status when it is sound; the text is read for the receiver's own words, which
many MTAs put only there; a bounce without a delivery-status part is read from its text.
"""
from __future__ import annotations

import email.message
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from ingest.bounce import formats
from ingest.bounce.classify import classify, is_hard, load_rules, pseudo_status
from ingest.bounce.dsn import read_dsn
from ingest.bounce.ses import looks_like_ses, read_ses
from ingest.bounce.smtp import (
    clean_address, find_addresses, find_command, find_reply_code, find_status, is_address, prefer_status, unfold,
)
from ingest.bounce.text import (
    Block, bare_names, block_text, cut_lines, cut_returned, expanded_from, read_blocks, unquote,
)
from ingest.config import IngestConfig
from ingest.message import header_text, part_text
from ingest.types import BounceEvent, ParseResult
from store.addresses import domain_of

BOUNCE_FROM = re.compile(r"mailer-daemon|post_?master|mail delivery|mail administrator|"
                         r"mail ?delivery ?(?:sub)?system|mdaemon|mail-?daemon", re.I)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status|failure|notification|failed|has failed|report|problem)|"
    r"returned mail|failure notice|could not be delivered|mail delivery failed|non[- ]?delivery|"
    r"delivery failure|mail (?:error|system error)|message not delivered|not delivered|"
    r"rejected|nicht zustellbar|fehlgeschlagen|unzustellbar|non remis|no entregado|"
    r"warning: could not send|failed mail|mail failure|delayed mail|delivery delayed|"
    r"\bbounced?\b|error sending|send failure|"
    # Exchange's and other MTAs' localised "Undeliverable:" subjects
    r"non recapitabile|onbestelbaar|kan inte levereras|kan ikke leveres|ikke levert|ei voi toimittaa|"
    r"nie mo.na dostarczy|nedoru.iteln|n.o entregue|n.o . poss.vel entregar|no se puede entregar|"
    r"impossible de remettre|kézbesíthetetlen|配信不能|配信エラー|无法投递|退信|배달되지 않음|"
    r"недоставлен|не доставлено|ошибка доставки", re.I)
NOT_A_BOUNCE_SUBJECT = re.compile(r"^\s*(?:re|fwd?|aw|tr|sv)\s*:|auto(?:matic)?[ -]?(?:reply|response)|"
                                  r"out of (?:the )?office|vacation|abwesen", re.I)

DSN_TYPES = frozenset(("message/delivery-status", "message/global-delivery-status",
                       "message/x-delivery-status"))
RETURNED_TYPES = frozenset(("message/rfc822", "text/rfc822-headers", "message/rfc822-headers",
                            "message/global", "message/global-headers", "message/partial",
                            "text/rfc822"))
_TAG = re.compile(r"<(?:br|p|div|tr|li|h\d)\b[^>]*>|</(?:p|div|tr|li|h\d|table)>", re.I)
_ANY_TAG = re.compile(r"<[^>]*>")
_ENTITY = {"&nbsp;": " ", "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'"}
_ENTITY_RE = re.compile("|".join(_ENTITY))
_RETURNED_SENDER = re.compile(r"^(?:From|Return-Path|Sender):[ \t]*(.*)$", re.M | re.I)
_HOST = r"([A-Za-z0-9][\w-]*(?:\.[\w-]+)*\.[A-Za-z]{2,})"
_REMOTE_MTA = (  # (a word the text must hold, where the remote host's name is then)
    ("host", re.compile(r"\bhost[: ]\s*" + _HOST + r"\.?\s*\[[\d.:a-fA-F]+\]")),  # Postfix, Exim
    ("talking to", re.compile(r"\b[Tt]alking to\s+" + _HOST + r"\.?")),  # Sendmail
    ("recipient domain", re.compile(r"recipient domain \S+ by\s+" + _HOST)),  # Gmail
    ("did not like", re.compile(_HOST + r"\s*\[[\d.]+\]\s+did not like")),  # DragonFly
    ("host", re.compile(r"\b(?:remote )?host\s+(\d{1,3}(?:\.\d{1,3}){3})\s+said")),  # qmail
    ("remote-mta", re.compile(r"(?i:remote-mta):\s*(?:dns;\s*)?<?\[?" + r"([\w.-]+\.[\w-]+)")),
)
MAX_DIAGNOSTIC = 2000


def looks_like_bounce(msg: email.message.Message) -> bool:
    """True for a delivery report that has no delivery-status part to show for it.

    ARF, DMARC and TLS reports are recognised before this runs (ingest/detect.py); an RFC 3834
    auto-reply from a person's mailbox is not a bounce even though it is automatic.
    """
    subject = header_text(msg, "Subject") or ""
    if msg.get("X-Failed-Recipients") is not None:
        return True
    sender = header_text(msg, "From") or ""
    from_daemon = bool(BOUNCE_FROM.search(sender)) or (msg.get("Return-Path") or "").strip() == "<>" and \
        bool(BOUNCE_SUBJECT.search(subject))
    if NOT_A_BOUNCE_SUBJECT.search(subject) and not from_daemon:
        return formats.has_marker(msg)  # a forwarded bounce still reads like one
    return bool(BOUNCE_FROM.search(sender) or BOUNCE_SUBJECT.search(subject)) or formats.has_marker(msg)


class _Parts:
    """What one walk over a bounce finds."""

    __slots__ = ("dsn", "text", "html", "returned", "returned_text")

    def __init__(self) -> None:
        self.dsn: list[str] = []
        self.text: list[str] = []
        self.html: list[str] = []
        self.returned: email.message.Message | None = None
        self.returned_text: str = ""


def _walk(msg: email.message.Message) -> _Parts:
    found = _Parts()
    stack = [msg]
    while stack:
        part = stack.pop()
        ctype = part.get_content_type()
        if " " in ctype or "\n" in ctype:  # a folded, unterminated Content-Type value
            ctype = ctype.split()[0].rstrip(";")
        if ctype in DSN_TYPES:
            found.dsn.append(_dsn_text(part))
            continue
        payload = part._payload  # what get_payload() returns, without its per-call header look-ups
        if ctype in RETURNED_TYPES and part is not msg:
            if found.returned is None and not found.returned_text:
                if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
                    found.returned = payload[0]
                else:
                    found.returned_text = _text_of(part)
            continue
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, email.message.Message)]))
            continue
        if ctype == "text/html":
            found.html.append(_text_of(part))
        elif ctype in ("text/plain", "text/global") or part is msg or ctype.startswith("multipart/"):
            if found.text and (part.get("Content-Disposition") or "").lower().startswith("attachment"):
                continue
            found.text.append(_text_of(part))
    return found


_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:+-]+)", re.I)


def _text_of(part: email.message.Message) -> str:
    """A leaf part decoded (transfer encoding, then charset), never raising.

    Japanese MTAs often send ISO-2022-JP without saying so; its escape sequences tell.
    """
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return part_text(part)
    if payload.isascii() and b"\x1b" not in payload:
        return payload.decode("ascii")
    m = _CHARSET.search(part.get("Content-Type") or "")
    charset = m.group(1).lower() if m else "utf-8"
    if b"\x1b$" in payload or b"\x1b(" in payload:
        charset = "iso-2022-jp" if charset in ("us-ascii", "ascii", "utf-8") else charset
    try:
        return payload.decode(charset, "replace")
    except (LookupError, UnicodeError):
        return payload.decode("utf-8", "replace")


def _dsn_text(part: email.message.Message) -> str:
    payload = part.get_payload()
    if not isinstance(payload, list):
        return part_text(part)
    cte = (part.get("Content-Transfer-Encoding") or "").strip().lower()
    blocks = []
    for block in payload:
        if not isinstance(block, email.message.Message):
            continue
        lines = [f"{name}: {value}" for name, value in block.items()]
        body = block.get_payload()
        if isinstance(body, str) and body.strip():
            lines.append(body)
        blocks.append("\n".join(lines))
    text = "\n\n".join(blocks)
    if cte == "base64" and ":" not in text[:200]:
        return part_text(part)
    return text


def _html_text(html: str) -> str:
    text = _untag(_TAG, "\n", html)
    text = _untag(_ANY_TAG, "", text)
    return _ENTITY_RE.sub(lambda m: _ENTITY[m.group(0)], text)


def _untag(pattern: re.Pattern, repl: str, text: str) -> str:
    """`pattern.sub(repl, text)` for a pattern that ends at a ">": past the last ">" none can
    match, and each "<" there would make the search read to the end of the text."""
    end = text.rfind(">") + 1
    return pattern.sub(repl, text[:end]) + text[end:]


def _senders(msg: email.message.Message, parts: _Parts, rest: str) -> frozenset[str]:
    """Addresses that sent the original: the bounce goes to them, they did not bounce."""
    values = [str(msg.get("To") or "")]
    if parts.returned is not None:
        values += [str(parts.returned.get(h) or "") for h in ("From", "Return-Path", "Sender")]
    else:
        values += _RETURNED_SENDER.findall(_first_header_block(parts.returned_text or rest))
    return frozenset(find_addresses(" ".join(values)))


_HEADER_LINE = re.compile(r"^[A-Za-z][\w-]*:[ \t]", re.M)


def _first_header_block(text: str) -> str:
    """The returned message's own header: a message it quotes in turn has other senders."""
    m = _HEADER_LINE.search(text)
    if m is None:
        return ""
    end = text.find("\n\n", m.start())
    return text[m.start():] if end < 0 else text[m.start():end]


def parse_bounce(msg: email.message.Message, config: IngestConfig) -> ParseResult:
    events = _events(msg, depth=0) or _flufl_events(msg)
    if not events:
        return ParseResult(kind="bounce", error="bounce names no recipient")
    out: list[BounceEvent] = []
    rules = load_rules(config.rules_file)
    for ev in events:
        fmt = ev.pop("_format", None)  # type: ignore[misc]
        _finish(ev)
        ev.update(classify(ev, rules=rules))  # type: ignore[typeddict-item]
        if fmt == "exim":
            said = find_status(ev.get("diagnostic"))
            ev["status"] = formats.exim_status(
                said, ev["reason"], ev.get("smtp_command"), ev.get("reply_code"),  # type: ignore[typeddict-item]
                lambda reason, temporary: pseudo_status(reason, temporary, rules))
            ev["hard_bounce"] = is_hard(ev["reason"], ev["status"], ev.get("reply_code"), ev.get("action"))
        out.append(ev)
    return ParseResult(kind="bounce", events=out)  # type: ignore[arg-type]


FLUFL_MAX_BYTES = 64 * 1024  # flufl.bounce's heuristic detectors read every line many times over


def _flufl_events(msg: email.message.Message) -> list[BounceEvent]:
    """Last resort, for a shape none of our readers knows: flufl.bounce's detectors (Mailman's),
    which name who bounced but not why. Imported only here: it is never on the common path.

    Only on messages of at most FLUFL_MAX_BYTES of text (its SimpleMatch costs ~250 ms per
    100 KB of lines), and each detector on its own: one that trips on odd input (Yale's on a
    missing From) is skipped, and the next still runs, as scan_message would have."""
    if _text_size(msg) > FLUFL_MAX_BYTES:
        return []
    found: set = set()
    for detector in _flufl_detectors():
        try:
            _temporary, permanent = detector().process(msg)
        except Exception:  # noqa: BLE001 - a detector that trips on odd input must not lose the message
            continue
        found.update(permanent)
        if _temporary or permanent:
            break
    events: list[BounceEvent] = []
    for raw in sorted(found):
        address = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip().lower()
        if "@" in address:
            events.append({"recipient": address, "action": "failed", "status": None, "reply_code": None,
                           "diagnostic": None})
    return events


def _flufl_detectors() -> list:
    """flufl.bounce's detectors in its own order (scan_message's list)."""
    from flufl.bounce import _scan

    return list(_scan._DETECTORS)


def _text_size(msg: email.message.Message) -> int:
    size = 0
    for part in msg.walk():
        payload = part.get_payload()
        if isinstance(payload, str):
            size += len(payload)
    return size


def _events(msg: email.message.Message, depth: int) -> list[BounceEvent]:
    parts = _walk(msg)
    full = "\n".join(parts.text) if parts.text else "\n".join(_html_text(h) for h in parts.html)
    if "\n>" in full:
        full = unquote(full)
    if not parts.dsn and looks_like_ses(full):
        return read_ses(full)  # type: ignore[return-value]
    full = cut_lines(full)  # what follows reads the first MAX_LINE characters of a line
    human = cut_returned(full)
    rest = full[len(human):]
    senders = _senders(msg, parts, rest)

    fmt = formats.format_of(msg, human)
    records: list[dict] = []
    for text in (() if fmt in formats.IGNORES_OWN_DSN else parts.dsn):
        _, recs = read_dsn(cut_lines(text))
        records.extend(r for r in recs if r.get("recipient"))
    if not records and "-recipient:" in human.lower():
        _, recs = read_dsn(human)  # the fields pasted into the text
        records.extend(r for r in recs if is_address(r.get("recipient")))

    reader = formats.reader_for(fmt)
    reading = reader(human, senders, msg) if reader else read_blocks(human, senders)
    blocks = reading.blocks
    failed = _failed_recipients(msg)

    said: dict[int, _Said] = {}  # what a block says, read once however many records point at it
    if records:
        events = [_from_record(r, blocks, said) for r in records]
    elif failed:
        events = [_from_header(a, blocks, human, said) for a in failed]
    else:
        events = [_from_block(b) for b in blocks]
    events = _dedupe(events)
    if events:
        _add_preamble(events, reading.preamble)
        if fmt == "exim" and not records:
            for ev in events:
                ev["_format"] = fmt  # type: ignore[typeddict-unknown-key]
        return events
    if depth == 0:
        # A gateway that wraps the real bounce: attached whole, or pasted below a notice.
        inner = parts.returned if parts.returned is not None and _is_report(parts.returned) else (
            _embedded(rest) if rest else None)
        if inner is not None:
            events = _events(inner, depth + 1)
            if events:
                return events
    domain = _sender_domain(msg)
    names = bare_names(human) if domain else []
    if names:
        said = unfold(block_text(human.split("\n")))
        return [{"recipient": f"{n}@{domain}", "diagnostic": said or None} for n in dict.fromkeys(names)]
    addresses = _named_elsewhere(human, senders)
    if not addresses:
        found = _returned_recipient(parts, rest, senders)
        addresses = [found] if found else _named_in_subject(msg, senders)
    if addresses:
        said = unfold(block_text(human.split("\n")))
        return [{"recipient": a, "diagnostic": said or None} for a in addresses]
    return []


_DIALOGUE_RCPT = re.compile(r"^[ \t>]*(?:>>>[ \t]*)?RCPT TO:[ \t]*<([^\s<>]+@[^\s<>]+)>", re.M | re.I)
_LABELLED_TO = re.compile(r"^[ \t]*(?:To|Recipient|Recipients|Original recipient):[ \t]*<?([^\s<>,;]+@[^\s<>,;]+?)>?[ \t]*$",
                          re.M | re.I)


def _named_elsewhere(human: str, senders: frozenset[str]) -> list[str]:
    """Who bounced, when no recipient block names them: the RCPT TO of a quoted SMTP
    dialogue, else a summary's one "To:" line (MMS gateways)."""
    for pattern in (_DIALOGUE_RCPT, _LABELLED_TO):
        found = [a for a in dict.fromkeys(clean_address(x) for x in pattern.findall(human))
                 if is_address(a) and a not in senders]
        if found and (pattern is _DIALOGUE_RCPT or len(found) == 1):
            return found  # type: ignore[return-value]
    return []


def _named_in_subject(msg: email.message.Message, senders: frozenset[str]) -> list[str]:
    """The last resort: the one address a bounce's Subject names ("Undeliverable: a@b")."""
    named = [a for a in dict.fromkeys(find_addresses(header_text(msg, "Subject") or ""))
             if is_address(a) and a not in senders]
    return named if len(named) == 1 else []


def _sender_domain(msg: email.message.Message) -> str | None:
    """The domain the bounce comes from: where bare local parts in its text live."""
    found = find_addresses(str(msg.get("From") or ""))
    return domain_of(found[0]) if found else None


_EMBEDDED_START = re.compile(r"^(?:From |Return-Path:|Received:)", re.M)


def _is_report(msg: email.message.Message) -> bool:
    return msg.get_content_type() == "multipart/report" or bool(BOUNCE_FROM.search(str(msg.get("From") or "")))


def _embedded(rest: str) -> email.message.Message | None:
    """A whole bounce pasted as text below a notice (some relays forward bounces so)."""
    m = _EMBEDDED_START.search(rest)
    if m is None or "delivery-status" not in rest[m.start():].lower():
        return None
    return email.message_from_string(rest[m.start():])


_TO_LINE = re.compile(r"^To:[ \t]*(.*(?:\n[ \t]+.*)*)", re.M | re.I)
_RECEIVED = re.compile(r"^Received:[ \t]*(.*(?:\n[ \t]+.*)*)", re.M | re.I)
_RECEIVED_FOR = re.compile(r"\bfor\s+<?([^\s<>;@]+@[^\s<>;]+?)>?\s*;")


def _returned_recipient(parts: _Parts, rest: str, senders: frozenset[str]) -> str | None:
    """Who the returned message was for, when the bounce names no one itself: the envelope
    recipient its newest Received header shows, else its only To address."""
    if parts.returned is not None:
        received = [str(v) for v in parts.returned.get_all("Received") or []]
        to = str(parts.returned.get("To") or "")
    else:
        text = parts.returned_text or rest
        received = _RECEIVED.findall(text)
        m = _TO_LINE.search(text)
        to = m.group(1) if m else ""
    for value in received:
        m = _RECEIVED_FOR.search(value)
        if m:
            address = clean_address(m.group(1))
            if is_address(address) and address not in senders:
                return address
            break
    addresses = set(find_addresses(to)) - senders
    return addresses.pop() if len(addresses) == 1 else None


def _failed_recipients(msg: email.message.Message) -> list[str]:
    value = msg.get("X-Failed-Recipients")
    if not value:
        return []
    return list(dict.fromkeys(a for a in find_addresses(str(value)) if is_address(a)))


def _block_for(recipient: str | None, blocks: list[Block], *others: str | None) -> Block | None:
    for name in (recipient, *others):
        if not name:
            continue
        for b in blocks:
            if b.recipient == name or expanded_from(b) == name:
                return b
    if len(blocks) == 1 and recipient and "@" not in recipient:
        return blocks[0]
    return None


@dataclass
class _Said:
    """What a block says, read once however many records of a DSN point at it."""

    text: str
    command: str | None
    reply_code: str | None
    status: str | None


def _said(block: Block, cache: dict[int, _Said]) -> _Said:
    found = cache.get(id(block))
    if found is None:
        text = unfold(block_text(block.lines))
        found = cache[id(block)] = _Said(text, find_command(text), find_reply_code(text), find_status(text))
    return found


def _from_record(rec: dict, blocks: list[Block], cache: dict[int, _Said]) -> BounceEvent:
    ev: BounceEvent = dict(rec)  # type: ignore[assignment]
    block = _block_for(ev.get("recipient"), blocks, ev.get("final_recipient"))
    if block is not None:
        said = _said(block, cache)
        ev["smtp_command"] = find_command(ev.get("diagnostic")) or said.command
        dsn_diag = ev.get("diagnostic") or ""
        if said.text and (not dsn_diag or (not find_reply_code(dsn_diag) and said.reply_code)
                          or (not find_status(dsn_diag) and said.status and len(dsn_diag) < 40)):
            ev["diagnostic"] = said.text
    return ev


def _from_header(address: str, blocks: list[Block], human: str, cache: dict[int, _Said]) -> BounceEvent:
    block = _block_for(address, blocks)
    said = _said(block, cache).text if block is not None else ""
    if not said:
        said = unfold(block_text(human.split("\n")))
    return {"recipient": address, "diagnostic": said or None}


def _from_block(block: Block) -> BounceEvent:
    ev: BounceEvent = {"recipient": block.recipient, "diagnostic": unfold(block_text(block.lines)) or None}
    original = expanded_from(block)
    if original and original != block.recipient:
        ev["final_recipient"] = block.recipient
        ev["recipient"] = original
    return ev


_CODE_LINE = re.compile(r"^\s*(?:[<>]{3}\s*)?[245]\d\d[ -]|\b[45]\.\d{1,3}\.\d{1,3}\b")


def _add_preamble(events: list[BounceEvent], preamble: list[str]) -> None:
    """Some MTAs state the error once, above the recipients (MailMarshal, James, Sendmail)."""
    bare = [ev for ev in events if not (find_reply_code(ev.get("diagnostic")) or find_status(ev.get("diagnostic")))]
    if not bare or not preamble:
        return
    said = [ln.strip() for ln in preamble if _CODE_LINE.search(ln)]
    if not said and not any(ev.get("diagnostic") or ev.get("status") for ev in events):
        # Nothing is said below any address (EZweb, some gateways state the error once
        # above the list): the preamble's own lines are the only account there is, but for
        # the opening lines of the format and the heading that introduces the list.
        said = [ln for ln in block_text(preamble).split("\n")
                if ln and not ln.endswith(":") and not formats.STARTS.match(ln)]
    if not said:
        return
    text = unfold("\n".join(said))
    for ev in bare:
        ev["diagnostic"] = f"{text} {ev.get('diagnostic') or ''}".strip()


def _dedupe(events: list[BounceEvent]) -> list[BounceEvent]:
    # One address the sender used may reach several mailboxes (an alias, a list): each
    # final recipient is a delivery of its own, with its own outcome.
    seen: dict[tuple, BounceEvent] = {}
    out = []
    for ev in events:
        rcpt = ev.get("recipient")
        if not rcpt:
            continue
        key = (rcpt, ev.get("final_recipient"))
        prior = seen.get(key)
        if prior is None:
            seen[key] = ev
            out.append(ev)
        else:  # the same recipient twice: keep the fuller account
            for field, value in ev.items():
                if value and not prior.get(field):
                    prior[field] = value  # type: ignore[literal-required]
    return out


def _finish(ev: BounceEvent) -> None:
    diag = ev.get("diagnostic") or ""
    if len(diag) > MAX_DIAGNOSTIC:
        diag = ev["diagnostic"] = diag[:MAX_DIAGNOSTIC]
    said_status = find_status(diag)
    code = ev.get("reply_code") or find_reply_code(diag)
    status = prefer_status(ev.get("status"), said_status, code)
    ev["status"] = status
    if code and status and code[0] != status[0]:
        m = re.search(r"\b(" + status[0] + r"\d\d)[ -]['\"]?#?" + re.escape(status) + r"\b", diag)
        code = m.group(1) if m else None
    ev["reply_code"] = code
    if not ev.get("smtp_command"):
        ev["smtp_command"] = find_command(diag)
    if not ev.get("remote_mta") and diag:
        low = diag.lower()
        for word, pattern in _REMOTE_MTA:
            m = pattern.search(diag) if word in low else None
            if m:
                ev["remote_mta"] = m.group(1).lower().rstrip(".")
                break
    if not ev.get("action") and status:
        ev["action"] = {"5": "failed", "4": "delayed", "2": "delivered"}.get(status[0])
    for key in ("arrival_date", "last_attempt_date"):
        ev[key] = _iso(ev.get(key))  # type: ignore[literal-required]
    for key in ("recipient", "action", "status", "reply_code", "diagnostic",
                "diagnostic_type", "remote_mta", "reporting_mta", "smtp_command"):
        ev.setdefault(key, None)  # type: ignore[misc]


_ISO = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")


def _iso(value: str | None) -> str | None:
    if not value:
        return None
    if _ISO.match(value):
        return value
    try:
        return parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
