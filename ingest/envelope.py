"""The envelope of one received message: how it came, from the collector to the store.

One type all the way: the SMTP and IMAP collectors make it, the spool writes it as the JSON
head of its file (`to_dict`) and reads it back (`from_dict`, which also reads the files
earlier versions wrote: spool files survive upgrades), the pipeline stores it beside the
message, and `parse_bytes` reads its recipients for VERP.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Envelope:
    """Where a message came from. `rcpt_tos` None: there was no SMTP envelope (IMAP, a file)."""

    source: str = "spool"  # smtp | imap | file | sender | spool (a file dropped into the spool)
    origin: str | None = None  # which connection, mailbox UID or file: "smtp 192.0.2.1 helo=mx.example"
    mail_from: str | None = None  # "" for the null reverse path of a DSN
    rcpt_tos: tuple[str, ...] | None = None
    client_address: str | None = None  # the SMTP client's IP address
    helo: str | None = None  # the name it gave in EHLO / HELO
    spooled_at: float | None = None  # Unix time the collector wrote it to the spool

    @property
    def smtp(self) -> bool:
        """True when the message came with an SMTP envelope (sender and recipients)."""
        return self.rcpt_tos is not None

    def to_dict(self) -> dict[str, Any]:
        """The spool's JSON form (the layout of the earlier versions, plus the client's address
        and name when known, so a spool can be read by the version before this one too)."""
        env: dict[str, Any] | None = None
        if self.rcpt_tos is not None:
            env = {"mail_from": self.mail_from, "rcpt_tos": list(self.rcpt_tos)}
            if self.client_address is not None:
                env["client_address"] = self.client_address
            if self.helo is not None:
                env["helo"] = self.helo
        return {"source": self.source, "origin": self.origin, "envelope": env, "spooled_at": self.spooled_at}

    @classmethod
    def from_dict(cls, meta: dict[str, Any]) -> Envelope:
        """`to_dict` read back; also a head written by an earlier version, or a damaged one
        (whatever cannot be read is left out, never an error: the message must be stored)."""
        if not isinstance(meta, dict):
            meta = {}
        env = meta.get("envelope")
        source = meta.get("source")
        origin = meta.get("origin")
        spooled = meta.get("spooled_at")
        fields: dict[str, Any] = {
            "source": source if isinstance(source, str) and source else "spool",
            "origin": origin if isinstance(origin, str) else None,
            "spooled_at": float(spooled) if isinstance(spooled, (int, float)) else None}
        if isinstance(env, dict) and env:
            rcpts = env.get("rcpt_tos") or ()
            fields.update(mail_from=env.get("mail_from"),
                          rcpt_tos=tuple(str(r) for r in rcpts) if isinstance(rcpts, (list, tuple)) else (),
                          client_address=env.get("client_address"), helo=env.get("helo"))
        return cls(**fields)
