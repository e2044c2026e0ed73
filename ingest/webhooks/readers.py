"""Each provider's reader by name, and the reading of a stored webhook body again (the
pipeline's `reprocess` of one kept in quarantine)."""
from __future__ import annotations

from typing import Callable, Mapping

from ingest.types import ParseResult
from ingest.webhooks import mailgun, postmark, sendgrid, ses
from ingest.webhooks.facts import ReadOptions, read_options, unreadable

SOURCE_PREFIX = "webhook:"  # inbound_messages.source of a webhook body: "webhook:ses"
READERS: dict[str, Callable[[Mapping[str, str], bytes, ReadOptions], ParseResult]] = {
    "ses": ses.read, "sendgrid": sendgrid.read, "mailgun": mailgun.read, "postmark": postmark.read}


def is_webhook(source: str | None) -> bool:
    return bool(source) and source.startswith(SOURCE_PREFIX)


def read_stored(source: str, raw: bytes, options: ReadOptions | None = None) -> ParseResult:
    """A stored body read again by its provider's reader (the headers are not kept: no reader
    needs them once the request was checked), with the options the web server reads with (the
    rules file, [webhooks] campaign_key and volume_from); the defaults without them."""
    reader = READERS.get(source[len(SOURCE_PREFIX):])
    if reader is None:
        return unreadable(f"no webhook reader for source {source!r}")
    return reader({}, raw, options or read_options())
