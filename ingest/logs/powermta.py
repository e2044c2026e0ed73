"""PowerMTA's accounting CSV, read line by line.

The first line names the fields (PowerMTA writes the ones its `<acct-file>` configuration
asks for, in that order), e.g.

    type,timeLogged,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,
    srcMta,dlvType,dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,envId
    d,2026-12-06 09:00:02-0000,news@example.com,alice@example.org,,relayed,2.0.0 (success),
    smtp;250 2.0.0 Ok,mx1.example.org (203.0.113.5),,smtp,app1 (192.0.2.40),smtp,192.0.2.18,...

Records `d` (delivered), `b` (bounced), `t` (transient), `rb` (a remote bounce: a
non-delivery report PowerMTA's bounce processor received, in the fields of a `b` record) and
`f` (a feedback-loop report PowerMTA received: the recipient in `rcpt`, the report's type in
`feedbackType`, the reported source IP in `sourceIp` when the file has them) are read; the
other types (receptions, remote status) are skipped. A header line met again starts a new
field list; a file holding several record types has the fields of them all (PowerMTA leaves
a field a record does not have empty).
"""
from __future__ import annotations

import csv
from datetime import datetime
from typing import Iterable, Iterator

from ingest.bounce.smtp import find_command, find_reply_code
from ingest.logs.records import LineError, LogRecord, ReadOptions, read_lines
from ingest.logs.timestamps import zone

OUTCOMES = {"d": "sent", "b": "bounced", "rb": "bounced", "t": "deferred", "f": "complaint"}
NEEDED = ("type", "timeLogged", "rcpt")


class PowerMtaReader:
    def __init__(self, options: ReadOptions) -> None:
        self.options = options
        self.zone = zone(options.zone)
        self.fields: dict[str, int] | None = None
        self.lowered: dict[str, int] = {}
        self.campaign = options.campaign_field

    def feed(self, lineno: int, line: str) -> list[LogRecord] | LineError | None:
        if not line.strip():
            return None
        try:
            values = next(csv.reader([line]))
        except csv.Error as exc:
            return LineError(lineno, f"not a CSV line ({exc})", line)
        if values and values[0] == "type":
            self.fields = {name.strip(): i for i, name in enumerate(values)}
            self.lowered = {name.lower(): i for name, i in self.fields.items()}
            missing = [f for f in NEEDED if f not in self.fields]
            if missing:
                self.fields = None
                return LineError(lineno, "the header line lacks the field(s) " + ", ".join(missing), line)
            return None
        if self.fields is None:
            return LineError(lineno, "a record before the header line (type,timeLogged,orig,rcpt,...)", line)
        outcome = OUTCOMES.get(values[0])
        if outcome is None:
            return None
        if len(values) < len(self.fields):
            return LineError(lineno, f"{len(values)} fields, the header names {len(self.fields)}", line)
        get = self._getter(values)
        when = _when(get("timeLogged"), self.zone)
        if when is None:
            return LineError(lineno, f"timeLogged {get('timeLogged')!r} is not a date (YYYY-MM-DD HH:MM:SS+ZZZZ)",
                             line)
        diag = get("dsnDiag") or ""
        kind, sep, text = diag.partition(";")
        diagnostic = text.strip() if sep and kind.strip().lower() in ("smtp", "x-postmta", "x-pmta") else diag.strip()
        mta = get("dsnMta") or ""
        status = (get("dsnStatus") or "").split(" ", 1)[0] or None
        record = LogRecord(
            outcome, when, line, lineno, recipient=get("rcpt") or None, sender=get("orig"),
            sending_ip=get("dlvSourceIp") or self.options.sending_ip, remote_mta=mta.split(" (", 1)[0] or None,
            status=status, diagnostic=diagnostic or None, pool=get("vmta") or None,
            campaign=get(self.campaign) or get("jobId") or None, mta_category=get("bounceCat") or None,
            message_id=(get("header_Message-Id") or "").strip("<>") or None)
        if outcome == "complaint":
            record.feedback_type = get("feedbackType") or "abuse"
            record.sending_ip = get("sourceIp") or get("srcIp") or record.sending_ip
            record.recipient = record.recipient or get("origRcpt") or None
        elif outcome != "sent" and diagnostic:
            record.reply_code = find_reply_code(diagnostic)
            record.smtp_command = find_command(diagnostic)
        return [record]

    def _getter(self, values: list[str]):
        fields, lowered = self.fields or {}, self.lowered

        def get(name: str) -> str | None:
            i = fields.get(name)
            if i is None:
                i = lowered.get(name.lower())
            return values[i].strip() if i is not None and i < len(values) else None
        return get


def _when(text: str | None, tz) -> datetime | None:
    if not text:
        return None
    for form in ("%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S"):
        try:
            when = datetime.strptime(text, form)
        except ValueError:
            continue
        return when if when.tzinfo else when.replace(tzinfo=tz)
    return None


def read(lines: Iterable[str], options: ReadOptions) -> Iterator[LogRecord | LineError]:
    return read_lines(PowerMtaReader(options), lines)
