"""The one shape every MTA log reader yields."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Iterator, Protocol

# outcomes of a result line; `sent` is volume, `bounced` / `expired` become bounce events,
# `deferred` is counted only (a delay is not a bounce), `dsn` names a notification the MTA
# itself wrote (Postfix's bounce daemon), `complaint` a feedback report the MTA received
OUTCOMES = ("sent", "bounced", "expired", "deferred", "dsn", "complaint")
FAILED = ("bounced", "expired")


@dataclass(slots=True)
class LogRecord:
    """One delivery result read from a log line; None = the line did not say."""

    outcome: str
    when: datetime  # timezone-aware
    line: str  # the line as written (what the digest is taken of)
    lineno: int
    recipient: str | None = None
    sender: str | None = None  # the envelope sender (return path); '' = a notification
    message_id: str | None = None
    sending_ip: str | None = None
    remote_mta: str | None = None
    status: str | None = None  # RFC 3463, e.g. 5.1.1
    reply_code: str | None = None
    diagnostic: str | None = None
    smtp_command: str | None = None
    campaign: str | None = None
    queue_id: str | None = None
    pool: str | None = None  # PowerMTA's virtual MTA, KumoMTA's egress pool
    feedback_type: str | None = None
    mta_category: str | None = None  # the MTA's own bounce category (PowerMTA's bounceCat)


@dataclass(slots=True)
class LineError:
    """A line the reader could not read, said so a person can find and fix it."""

    lineno: int
    error: str
    line: str


@dataclass(frozen=True)
class ReadOptions:
    """What a reader cannot learn from the lines: the year and zone of syslog timestamps,
    the field naming the campaign, the IP the MTA sends from when its log does not say."""

    reference: datetime  # about when the file was written (its mtime): the year of 'Dec  6 20:50:10'
    zone: str = "UTC"  # of timestamps that carry none
    campaign_field: str = "campaign"
    sending_ip: str | None = None


class LineReader(Protocol):
    """A format's reader: fed each line in order (without its end of line), it answers with
    nothing, the records the line makes, or why the line could not be read."""

    def feed(self, lineno: int, line: str) -> list[LogRecord] | LineError | None: ...


def read_lines(reader: LineReader, lines: Iterable[str]) -> Iterator[LogRecord | LineError]:
    """What a format's reader makes of `lines`, in order."""
    for lineno, line in enumerate(lines, start=1):
        got = reader.feed(lineno, line.rstrip("\r\n"))
        if isinstance(got, LineError):
            yield got
        elif got:
            yield from got
