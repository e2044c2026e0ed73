"""Postfix's mail log, read line by line.

A delivery result is a line of a delivery agent (smtp, lmtp, local, virtual, pipe, error...):

    Dec  6 20:50:10 mx1 postfix/smtp[4711]: 3F2A1B2C3D: to=<ann@example.org>,
        relay=mx.example.org[192.0.2.25]:25, delay=1.2, delays=0.1/0/0.6/0.5, dsn=5.1.1,
        status=bounced (host mx.example.org[192.0.2.25] said: 550 5.1.1 <ann@example.org>:
        Recipient address rejected: User unknown (in reply to RCPT TO command))

(one line in the log). The queue id joins it to what cleanup (`message-id=<...>`, and
`info: header NAME: VALUE` when header_checks log the campaign header) and qmgr
(`from=<...>, size=..., nrcpt=...`; `from=<...>, status=expired, returned to sender`;
`removed`) said of the message earlier. The bounce daemon's `sender non-delivery
notification: QUEUEID` names the notification Postfix wrote. Timestamps are classic syslog
(the year inferred, see timestamps.SyslogYear) or RFC 3339 (`2026-12-06T20:50:10.123+00:00`).
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Iterable, Iterator

from ingest.bounce.smtp import find_command, find_reply_code
from ingest.logs.records import LineError, LogRecord, ReadOptions, read_lines
from ingest.logs.timestamps import MONTHS, SyslogYear, rfc3339, zone

_CLASSIC = re.compile(r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))? (\S+) (\S+?)(?:\[\d+\])?: (.*)")
_ISO = re.compile(r"(\d{4}-\d\d-\d\dT\S+) (\S+) (\S+?)(?:\[\d+\])?: (.*)")
# short (hex) and long (base 52, 'z', inode) queue ids
_QUEUE_ID = re.compile(r"([0-9A-F]{6,}|[0-9A-Za-y]{10,}z[0-9A-Za-z]+): (.*)")
_TO = re.compile(r"to=<([^>]*)>")
_RELAY = re.compile(r"relay=([^,\s]+)")
_DSN = re.compile(r"dsn=(\d\.\d{1,3}\.\d{1,3})")
_STATUS = re.compile(r"status=(\w+)(?: \((.*)\))?\s*$")
_FROM = re.compile(r"from=<([^>]*)>")
_HEADER = re.compile(r"info: header ([\w-]+): (.*?) from \S+\[[^\]]*\]")
_SAID = re.compile(r"^host (\S+?)\[([^\]]*)\] said: (.*)$", re.S)
_REFUSED = re.compile(r"^host (\S+?)\[([^\]]*)\] refused to talk to me: (.*)$", re.S)
_NOTIFICATION = re.compile(r"sender (?:non-delivery|delivery status|delay) notification: (\S+)")
# daemons whose lines this reader has no use for (connections, submissions, the master)
UNREAD_DAEMONS = frozenset({"smtpd", "postscreen", "anvil", "dnsblog", "tlsproxy", "pickup", "master", "scache",
                            "tlsmgr", "verify", "proxymap", "trivial-rewrite", "postfix-script"})
DELIVERY_AGENTS = frozenset({"smtp", "lmtp", "local", "virtual", "pipe", "error", "retry", "discard", "relay"})
RESULTS = {"sent": "sent", "bounced": "bounced", "deferred": "deferred", "expired": "expired",
           "undeliverable": "bounced"}
OPEN_QUEUE_IDS = 200_000  # messages remembered at once; the oldest are forgotten past this


class PostfixReader:
    """Feed it lines in order; it keeps what it needs of each message until qmgr removes it."""

    def __init__(self, options: ReadOptions) -> None:
        self.options = options
        self.zone = zone(options.zone)
        self.years = SyslogYear(options.reference)
        self.campaign_headers = {options.campaign_field.lower(), "x-" + options.campaign_field.lower()}
        self.queue: dict[str, dict] = {}

    def feed(self, lineno: int, line: str) -> list[LogRecord] | LineError | None:
        i = line.find("]: ")
        if i > 0:  # "program[pid]: ": a daemon whose lines say nothing read here is passed over at once
            j = line.rfind("/", 0, i)
            if j > 0 and line[j + 1:line.find("[", j, i)] in UNREAD_DAEMONS:
                return None
        elif ": " not in line:
            return None
        m = _CLASSIC.match(line)
        if m:
            month, day, hh, mm, ss, frac, _host, program, message = m.groups()
            if "/" not in program:
                return None
            try:  # the year of every line (a new year shows as a month that goes back)
                year = self.years.of(MONTHS[month], int(day))
            except KeyError:
                return LineError(lineno, f"the timestamp {line[:15]!r} is not a date", line)
            stamp: tuple | str = (year, month, day, hh, mm, ss, frac)  # a time only for a line that makes a record
        else:
            m = _ISO.match(line)
            if not m:
                return None
            iso, _host, program, message = m.groups()
            if "/" not in program:
                return None
            stamp = iso
        q = _QUEUE_ID.match(message)
        if not q:
            return None
        qid, rest = q.groups()
        daemon = program.rsplit("/", 1)[1]
        if daemon in DELIVERY_AGENTS and "status=" in rest:
            when = self._when(stamp, lineno, line)
            if isinstance(when, LineError):
                return when
            return self._result(lineno, line, when, qid, rest)
        if daemon == "cleanup":
            if rest.startswith("message-id="):
                self._state(qid)["message_id"] = rest[11:].strip().strip("<>") or None
            elif rest.startswith("info: header "):
                h = _HEADER.match(rest)
                if h and h.group(1).lower() in self.campaign_headers:
                    self._state(qid)["campaign"] = h.group(2).strip()
        elif daemon == "qmgr":
            if rest == "removed":
                self.queue.pop(qid, None)
            elif rest.startswith("from=<"):
                f = _FROM.match(rest)
                state = self._state(qid)
                if f:
                    state["sender"] = f.group(1)
                if "status=expired" in rest:
                    when = self._when(stamp, lineno, line)
                    if isinstance(when, LineError):
                        return when
                    return self._expired(lineno, line, when, qid, state)
        elif daemon == "bounce":
            n = _NOTIFICATION.search(rest)
            if n:
                when = self._when(stamp, lineno, line)
                if isinstance(when, LineError):
                    return when
                return [LogRecord("dsn", when, line, lineno, queue_id=qid, sender=self._state(qid).get("sender"),
                                  diagnostic=f"notification {n.group(1)}")]
        return None

    def _when(self, stamp: tuple | str, lineno: int, line: str) -> datetime | LineError:
        """The time of a line's timestamp (a classic one's parts, or RFC 3339)."""
        if isinstance(stamp, str):
            when = rfc3339(stamp)
            return when if when is not None else LineError(
                lineno, f"the timestamp {stamp!r} is not an RFC 3339 date", line)
        year, month, day, hh, mm, ss, frac = stamp
        try:
            return datetime(year, MONTHS[month], int(day), int(hh), int(mm), int(ss),
                            int((frac or "0").ljust(6, "0")), tzinfo=self.zone)
        except ValueError:
            return LineError(lineno, f"the timestamp {line[:15]!r} is not a date", line)

    def _state(self, qid: str) -> dict:
        state = self.queue.get(qid)
        if state is None:
            if len(self.queue) >= OPEN_QUEUE_IDS:
                self.queue.pop(next(iter(self.queue)))
            state = self.queue[qid] = {}
        return state

    def _result(self, lineno: int, line: str, when: datetime, qid: str, rest: str) -> list[LogRecord] | LineError:
        to, st = _TO.search(rest), _STATUS.search(rest)
        if not to or not st:
            return LineError(lineno, "a delivery result without to=<...> or status=...", line)
        outcome = RESULTS.get(st.group(1))
        if outcome is None:
            return None  # e.g. status=deliverable (address verification probes)
        state = self._state(qid)
        text = st.group(2) or ""
        relay = _RELAY.search(rest)
        dsn = _DSN.search(rest)
        remote, diagnostic = None, text
        said = _SAID.match(text) or _REFUSED.match(text)
        if said:
            remote, diagnostic = said.group(1), said.group(3)
        elif relay and relay.group(1) not in ("none", "local", "virtual"):
            remote = relay.group(1).split("[", 1)[0]
        record = LogRecord(
            outcome, when, line, lineno, recipient=to.group(1), sender=state.get("sender"),
            message_id=state.get("message_id"), sending_ip=self.options.sending_ip, remote_mta=remote,
            status=dsn.group(1) if dsn else None, diagnostic=diagnostic or None, campaign=state.get("campaign"),
            queue_id=qid)
        if outcome != "sent" and diagnostic:
            record.reply_code = find_reply_code(diagnostic)
            record.smtp_command = find_command(diagnostic)
        if outcome == "deferred":
            state.setdefault("deferred", {})[record.recipient] = record
        elif "deferred" in state:
            state["deferred"].pop(record.recipient, None)
        return [record]

    def _expired(self, lineno: int, line: str, when: datetime, qid: str, state: dict) -> list[LogRecord]:
        """qmgr gave up on the message: each recipient still deferred expires, with the reason
        of its last delay."""
        out = []
        for last in state.pop("deferred", {}).values():
            out.append(LogRecord(
                "expired", when, f"{line}\0{last.recipient}", lineno, recipient=last.recipient,
                sender=state.get("sender"), message_id=state.get("message_id"), sending_ip=last.sending_ip,
                remote_mta=last.remote_mta, status=last.status, reply_code=last.reply_code,
                diagnostic=last.diagnostic, smtp_command=last.smtp_command, campaign=state.get("campaign"),
                queue_id=qid))
        return out


def read(lines: Iterable[str], options: ReadOptions) -> Iterator[LogRecord | LineError]:
    """The records (and unreadable lines) of `lines`, in order."""
    return read_lines(PostfixReader(options), lines)
