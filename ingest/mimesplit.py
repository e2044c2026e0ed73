"""A faster `email.message_from_bytes` (compat32) that builds the very same message tree.

The email package's FeedParser is written for input that arrives in pieces: every line goes
through a generator, a deque and a stack of end-of-part predicates (one compiled regular
expression per boundary). Our input is always whole, so this module runs the same algorithm
(state for state, defect for defect) over the text and the offsets where its lines start: a
header block is read with one regular expression, a part's body is cut out of the text where
`str.find` sees its boundary, and boundary lines are tested with string operations. The
result is a tree of the same classes with the same headers, payloads, preambles, epilogues,
default types and defects.

It declines (returns None, and the caller uses the email package) for what it does not mirror:
carriage returns (normalise them first), and the two rare paths where FeedParser pushes back
a line it has already handed out (an empty string at the end of a part after a boundary, a
`From ` line at the end of a header block).
"""
from __future__ import annotations

import re
from email import errors
from email._policybase import compat32


class _Decline(Exception):
    pass


class ShapeLimit(ValueError):
    """The message has more parts, or deeper nesting, than the reader was allowed to build;
    the text says which. Reading stops there: each level of nesting makes every line of the
    levels inside it cost more, so a hostile message would cost time in depth times size."""


# FeedParser's headerRE: `From `, a (possibly empty) field name and a colon, or a blank start.
_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]").match
# A run of such lines, read at once; then its fields, when no line needs FeedParser's special
# cases (a `From ` line, a continuation first, a colon first): one match per field, each
# starting where the last one ended.
_HEADER_RUN = re.compile(r"(?:(?:From |[\041-\071\073-\176]*:|[\t ])[^\n]*(?:\n|\Z))*").match
_FIELDS = re.compile(r"([\041-\071\073-\176]+):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)\n?").findall
_SPECIAL_FIRST = (" ", "\t", "From ", ":")


class _Boundary:
    """FeedParser's `(?P<sep>--B)(?P<end>--)?(?P<ws>[ \\t]*)(?P<linesep>\\n)?$` without a regex."""

    __slots__ = ("sep", "n", "found")

    def __init__(self, boundary: str):
        self.sep = "--" + boundary
        self.n = len(self.sep)
        self.found = (0, -1)  # (a line's offset, the first line at or after it that this ends on)

    def match(self, line: str):
        """None, or (is the close boundary, ends in a newline)."""
        if not line.startswith(self.sep):
            return None
        rest = line[self.n:]
        end = rest[:2] == "--"
        if end:
            rest = rest[2:]
        nl = rest.endswith("\n")
        core = rest[:-1] if nl else rest
        if core and core.strip(" \t"):
            return None
        return end, nl

    def __call__(self, line: str) -> bool:
        return line[:1] == "-" and self.match(line) is not None

    def next_line(self, text: str, at: int) -> int:
        """Where the first line at or after offset `at` (a line start) that this boundary ends
        on starts; the text's length when none does."""
        since, found = self.found
        if since <= at <= found:
            return found
        start, sep = at, self.sep
        if not text.startswith(sep, at):
            at = text.find("\n" + sep, at) + 1 or -1
        while at >= 0:
            if self.match(text[at:text.find("\n", at) + 1 or len(text)]) is not None:
                break
            at = text.find("\n" + sep, at) + 1 or -1
        else:
            at = len(text)
        self.found = (start, at)
        return at


class _Blank:
    """FeedParser's NLCRE.match as an end-of-part test (no carriage returns here)."""

    __slots__ = ("found",)

    def __init__(self) -> None:
        self.found = (0, -1)

    def __call__(self, line: str) -> bool:
        return line[:1] == "\n"

    def next_line(self, text: str, at: int) -> int:
        since, found = self.found
        if since <= at <= found:
            return found
        start = at
        if text[at:at + 1] != "\n":
            at = text.find("\n\n", at) + 1 or len(text)
        self.found = (start, at)
        return at


class _Parser:
    """FeedParser over the whole text, its position the offset where the next line starts
    (lines end at "\\n" only, as FeedParser's do once carriage returns are gone)."""

    def __init__(self, text: str, factory, policy, max_depth: int | None = None, max_parts: int | None = None):
        self.text = text
        self.max_depth = max_depth
        self.max_parts = max_parts
        self.end = len(text)
        self.pos = 0
        self.prev = 0  # where the line readline() last returned starts
        self.eof: list = []
        self.factory = factory
        self.policy = policy
        self.stack: list = []
        self.cur = None
        self.last = None
        self.parts = 0
        self.depth = 0

    # -- BufferedSubFile, as an offset into the text
    def readline(self) -> str:
        pos = self.pos
        if pos >= self.end:
            return ""
        nxt = self.text.find("\n", pos) + 1 or self.end
        line = self.text[pos:nxt]
        if self.eof and line[:1] in "-\n":
            for ateof in self.eof:
                if ateof(line):
                    return ""
        self.prev = pos
        self.pos = nxt
        return line

    def unreadline(self) -> None:
        self.pos = self.prev

    def rest(self) -> str:
        """The text up to the end of the current part (what `for line in input` collects)."""
        start = self.pos
        if not self.eof:
            self.pos = self.end
            return self.text[start:]
        end = self.end
        for ateof in self.eof:
            found = ateof.next_line(self.text, start)
            if found < end:
                end = found
        self.pos = end
        return self.text[start:end]

    def at_eof(self, line: str) -> bool:
        if self.eof and line[:1] in "-\n":
            for ateof in self.eof:
                if ateof(line):
                    return True
        return False

    # -- FeedParser
    def new_message(self):
        msg = self.factory(policy=self.policy)
        cur = self.cur
        if cur is not None and len(cur) and cur.get_content_type() == "multipart/digest":
            msg.set_default_type("message/rfc822")
        if self.stack:
            self.stack[-1].attach(msg)
        self.stack.append(msg)
        self.cur = msg
        self.last = msg
        self.parts += 1
        if len(self.stack) > self.depth:
            self.depth = len(self.stack)
            if self.max_depth is not None and self.depth - 1 > self.max_depth:
                raise ShapeLimit(f"MIME nesting deeper than {self.max_depth} levels")
        if self.max_parts is not None and self.parts > self.max_parts:
            raise ShapeLimit(f"more than {self.max_parts} MIME parts")

    def pop_message(self):
        msg = self.stack.pop()
        self.cur = self.stack[-1] if self.stack else None
        return msg

    def parse_part(self) -> None:
        self.new_message()
        cur = self.cur
        # The header block: what FeedParser's header loop reads (a blank line ends it and is
        # consumed; any other line that is no header ends it and is left for the body).
        text = self.text
        start = self.pos
        end = _HEADER_RUN(text, start).end()
        if self.eof and (text[start:start + 1] == "-" or text.find("\n-", start, end) >= 0):
            end = self._header_end(start)  # a line in the run may end the part first
        if end < self.end:
            nxt = text.find("\n", end) + 1 or self.end
            line = text[end:nxt]
            if self.at_eof(line):
                self.pos = end
            elif line[:1] == "\n":
                self.pos = nxt
            else:
                self.pos = end
                self.policy.handle_defect(cur, errors.MissingHeaderBodySeparatorDefect())
        else:
            self.pos = self.end
        if end > start:
            self.parse_headers(cur, text[start:end])
        ctype = cur.get_content_type()
        if ctype == "message/delivery-status":
            while True:
                self.eof.append(_Blank())
                self.parse_part()
                self.pop_message()
                self.eof.pop()
                self.readline()
                line = self.readline()
                if line == "":
                    break
                self.unreadline()
            return
        maintype = ctype.split("/")[0]
        if maintype == "message":
            self.parse_part()
            self.pop_message()
            return
        if maintype == "multipart":
            self.parse_multipart(cur)
            return
        cur.set_payload(self.rest())

    def _header_end(self, at: int) -> int:
        """Where the header run starting at `at` ends, testing each line for the part's end."""
        text, end = self.text, self.end
        while at < end:
            nxt = text.find("\n", at) + 1 or end
            line = text[at:nxt]
            if self.at_eof(line) or not _HEADER_LINE(line):
                return at
            at = nxt
        return at

    def parse_multipart(self, cur) -> None:
        boundary = cur.get_boundary()
        if boundary is None:
            self.policy.handle_defect(cur, errors.NoBoundaryInMultipartDefect())
            cur.set_payload(self.rest())
            return
        if str(cur.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit", "binary"):
            self.policy.handle_defect(cur, errors.InvalidMultipartContentTransferEncodingDefect())
        bre = _Boundary(boundary)
        capturing_preamble = True
        preamble: list[str] = []
        linesep = False
        close_boundary_seen = False
        while True:
            line = self.readline()
            if line == "":
                break
            mo = bre.match(line)
            if mo:
                if mo[0]:
                    close_boundary_seen = True
                    linesep = mo[1]
                    break
                if capturing_preamble:
                    if preamble:
                        if preamble[-1].endswith("\n"):
                            preamble[-1] = preamble[-1][:-1]
                        cur.preamble = "".join(preamble)
                    capturing_preamble = False
                    self.unreadline()
                    continue
                while True:
                    line = self.readline()
                    if line == "":
                        raise _Decline  # FeedParser pushes back the empty string here
                    if not bre.match(line):
                        self.unreadline()
                        break
                self.eof.append(bre)
                self.parse_part()
                last = self.last
                if last.get_content_maintype() == "multipart":
                    epilogue = last.epilogue
                    if epilogue == "":
                        last.epilogue = None
                    elif epilogue is not None and epilogue.endswith("\n"):
                        last.epilogue = epilogue[:-1]
                else:
                    payload = last._payload
                    if isinstance(payload, str) and payload.endswith("\n"):
                        last._payload = payload[:-1]
                self.eof.pop()
                self.pop_message()
                self.last = self.cur
            else:
                preamble.append(line)
        if capturing_preamble:
            self.policy.handle_defect(cur, errors.StartBoundaryNotFoundDefect())
            cur.set_payload("".join(preamble))
            self.rest()
            cur.epilogue = ""
            return
        if not close_boundary_seen:
            self.policy.handle_defect(cur, errors.CloseBoundaryNotFoundDefect())
            return
        epilogue = self.rest()
        if not linesep and epilogue[:1] == "\n":
            epilogue = epilogue[1:]
        cur.epilogue = epilogue

    def parse_headers(self, cur, block: str) -> None:
        """FeedParser._parse_headers, with compat32's header_source_parse inlined."""
        if block.startswith(_SPECIAL_FIRST) or "\nFrom " in block or "\n:" in block:
            raw = self._header_fields(cur, _split_lines(block))
        else:
            raw = _FIELDS(block)
        if raw:
            cur._headers.extend(raw)
            changed = getattr(cur, "_changed", None)  # IndexedMessage's set_raw hook
            if changed is not None:
                changed()

    def _header_fields(self, cur, lines: list[str]) -> list[tuple[str, str]]:
        """The fields of header lines that hold FeedParser's special cases, one line at a time."""
        raw = []
        name = None  # the field being read, its first line and any continuation lines
        first = ""
        more: list[str] = []
        for lineno, line in enumerate(lines):
            c = line[0]
            if c == " " or c == "\t":
                if name is None:
                    self.policy.handle_defect(cur, errors.FirstHeaderLineIsContinuationDefect(line))
                    continue
                more.append(line)
                continue
            if name is not None:
                value = first.lstrip(" \t") + "".join(more) if more else first.lstrip(" \t")
                raw.append((name, value.rstrip("\r\n")))
                name = None
            if c == "F" and line.startswith("From "):
                if lineno == 0:
                    cur.set_unixfrom(line[:-1] if line.endswith("\n") else line)
                    continue
                if lineno == len(lines) - 1:
                    raise _Decline  # FeedParser pushes this line back as the body's first
                cur.defects.append(errors.MisplacedEnvelopeHeaderDefect(line))
                continue
            i = line.find(":")
            if i == 0:
                cur.defects.append(errors.InvalidHeaderDefect("Missing header name."))
                continue
            name = line[:i]
            first = line[i + 1:]
            more = []
        if name is not None:
            value = first.lstrip(" \t") + "".join(more) if more else first.lstrip(" \t")
            raw.append((name, value.rstrip("\r\n")))
        return raw


def message_from_bytes(raw: bytes, factory):
    """What `email.message_from_bytes(raw, _class=factory)` returns, or None to ask it instead."""
    found = read_message(raw, factory)
    return found[0] if found is not None else None


def read_message(raw: bytes, factory, max_depth: int | None = None, max_parts: int | None = None) -> tuple | None:
    """(the message, its number of parts, its deepest nesting: the root is 0), or None when
    the email package must read it (see `message_from_bytes`). Raises ShapeLimit past
    `max_depth` levels of nesting or `max_parts` parts."""
    if b"\r" in raw:
        return None
    parser = _Parser(raw.decode("ascii", "surrogateescape"), factory, compat32, max_depth, max_parts)
    try:
        parser.parse_part()
    except _Decline:
        return None
    root = parser.pop_message()
    if parser.stack:
        return None
    if root.get_content_maintype() == "multipart" and not root.is_multipart():
        compat32.handle_defect(root, errors.MultipartInvariantViolationDefect())
    return root, parser.parts, parser.depth - 1


def _split_lines(text: str) -> list[str]:
    """The lines of `text` as FeedParser cuts them: at newlines only, each keeping its own."""
    lines = [line + "\n" for line in text.split("\n")]
    last = lines.pop()
    if last != "\n":
        lines.append(last[:-1])
    return lines
