"""What the pipeline hands the fact writer, and what it answers for each input.

Apart from both, so that `ingest.pipeline` (which stores messages) and `ingest.facts`
(which writes what was read from them) each import it and not each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ingest.envelope import Envelope
from ingest.types import ParseResult


@dataclass
class Outcome:
    """What became of one input."""

    message_id: int | None
    sha256: str
    kind: str
    status: str  # parsed | quarantined | ignored
    error: str | None
    events: int
    duplicate: bool = False  # the same bytes were stored before
    origin: str | None = None


@dataclass
class Parsed:
    """One input, parsed; made in a worker process, so it carries the compressed bytes only."""

    size: int
    raw_zlib: bytes
    sha256: str
    envelope: Envelope
    result: ParseResult
    received_at: datetime | None = None
