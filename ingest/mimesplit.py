"""A faster `email.message_from_bytes` (compat32) that builds the very same message tree.

The email package's FeedParser is written for input that arrives in pieces: every line goes
through a generator, a deque and a stack of end-of-part predicates (one compiled regular
expression per boundary). Our input is always whole, so this module runs the same algorithm
(state for state, defect for defect) over a list of lines with an index, and tests boundary
lines with string operations. The result is a tree of the same classes with the same headers,
payloads, preambles, epilogues, default types and defects.

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


# FeedParser's headerRE: `From `, a (possibly empty) field name and a colon, or a blank start.
_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]").match


class _Boundary:
    """FeedParser's `(?P<sep>--B)(?P<end>--)?(?P<ws>[ \\t]*)(?P<linesep>\\n)?$` without a regex."""

    __slots__ = ("sep", "n")

    def __init__(self, boundary: str):
        self.sep = "--" + boundary
        self.n = len(self.sep)

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


def _blank(line: str) -> bool:  # NLCRE.match without carriage returns
    return line[:1] == "\n"


class _Parser:
    def __init__(self, lines: list[str], factory, policy):
        self.lines = lines
        self.n = len(lines)
        self.pos = 0
        self.eof: list = []
        self.factory = factory
        self.policy = policy
        self.stack: list = []
        self.cur = None
        self.last = None

    # -- BufferedSubFile, as an index into the lines
    def readline(self) -> str:
        pos = self.pos
        if pos >= self.n:
            return ""
        line = self.lines[pos]
        if self.eof and line[:1] in "-\n":
            for ateof in self.eof:
                if ateof(line):
                    return ""
        self.pos = pos + 1
        return line

    def unreadline(self) -> None:
        self.pos -= 1

    def rest(self) -> list[str]:
        """Every line up to the end of the current part (what `for line in input` collects)."""
        start = i = self.pos
        lines, n, eof = self.lines, self.n, self.eof
        if not eof:
            self.pos = n
            return lines[start:]
        while i < n:
            line = lines[i]
            if line[:1] in "-\n" and any(ateof(line) for ateof in eof):
                break
            i += 1
        self.pos = i
        return lines[start:i]

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

    def pop_message(self):
        msg = self.stack.pop()
        self.cur = self.stack[-1] if self.stack else None
        return msg

    def parse_part(self) -> None:
        self.new_message()
        cur = self.cur
        # The header block: what FeedParser's header loop reads (a blank line ends it and is
        # consumed; any other line that is no header ends it and is left for the body).
        lines, n, eof = self.lines, self.n, self.eof
        start = i = self.pos
        while i < n:
            line = lines[i]
            if eof and line[:1] in "-\n" and any(ateof(line) for ateof in eof):
                self.pos = i
                break
            if not _HEADER_LINE(line):
                self.pos = i
                if line[:1] == "\n":
                    self.pos = i + 1
                else:
                    self.policy.handle_defect(cur, errors.MissingHeaderBodySeparatorDefect())
                break
            i += 1
        else:
            self.pos = n
        if i > start:
            self.parse_headers(cur, lines[start:i])
        ctype = cur.get_content_type()
        if ctype == "message/delivery-status":
            while True:
                self.eof.append(_blank)
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
        cur.set_payload("".join(self.rest()))

    def parse_multipart(self, cur) -> None:
        boundary = cur.get_boundary()
        if boundary is None:
            self.policy.handle_defect(cur, errors.NoBoundaryInMultipartDefect())
            cur.set_payload("".join(self.rest()))
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
        epilogue = [""] if linesep else []
        epilogue.extend(self.rest())
        if epilogue and epilogue[0][:1] == "\n":
            epilogue[0] = epilogue[0][1:]
        cur.epilogue = "".join(epilogue)

    def parse_headers(self, cur, lines: list[str]) -> None:
        """FeedParser._parse_headers, with compat32's header_source_parse inlined."""
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
        if raw:
            cur._headers.extend(raw)
            changed = getattr(cur, "_changed", None)  # IndexedMessage's set_raw hook
            if changed is not None:
                changed()


def message_from_bytes(raw: bytes, factory):
    """What `email.message_from_bytes(raw, _class=factory)` returns, or None to ask it instead."""
    if b"\r" in raw:
        return None
    text = raw.decode("ascii", "surrogateescape")
    lines = text.splitlines(True) if _plain_lines(text) else _split_lines(text)
    parser = _Parser(lines, factory, compat32)
    try:
        parser.parse_part()
    except _Decline:
        return None
    root = parser.pop_message()
    if parser.stack:
        return None
    if root.get_content_maintype() == "multipart" and not root.is_multipart():
        compat32.handle_defect(root, errors.MultipartInvariantViolationDefect())
    return root


# str.splitlines also breaks at \v, \f, \x1c-\x1e (and, not in ASCII text, \x85 and \u2028/9);
# FeedParser breaks only at newlines (and carriage returns, which we decline).
_OTHER_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def _plain_lines(text: str) -> bool:
    return not any(c in text for c in _OTHER_BREAKS)


def _split_lines(text: str) -> list[str]:
    lines = [line + "\n" for line in text.split("\n")]
    last = lines.pop()
    if last != "\n":
        lines.append(last[:-1])
    return lines
