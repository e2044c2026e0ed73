"""One-click unsubscribe (RFC 8058): the signed token of a `List-Unsubscribe` link names the
send-log row of the message it came in, and that row says who to suppress.

The sender puts `https://BASE/unsubscribe/TOKEN` (TOKEN = `ingest.verp.make_token(send_id,
web.secret, purpose="unsubscribe")`) in every message; the HTTP blueprint serves that URL
and calls `resolve` then `unsubscribe` here. A token that is malformed, fails its HMAC, was
made for another purpose (a return path) or names no send is refused: nothing is written.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from ingest.verp import read_token
from store.addresses import AddressError, is_hashed, normalise, split_address
from store.suppressions import GLOBAL, Suppression, add_suppression
from store.volume import SendLog

PURPOSE = "unsubscribe"
REASON = "unsubscribe"
MAX_TOKEN_LENGTH = 40  # DESIGN.md: a token is at most 40 characters


@dataclass(frozen=True)
class Request:
    """Who a valid token unsubscribes, and in which scope."""

    send_id: int
    recipient: str  # normalised, or the hmac-sha256: form once the address was erased
    campaign: str | None
    sending_domain: str | None
    scope: str

    def details(self, method: str, **more) -> dict:
        """What a suppression made through this link keeps about where it came from."""
        return {"campaign": self.campaign, "sending_domain": self.sending_domain, "method": method, **more}


def resolve(session: Session, token: str, secret: str, scope_mode: str = "global") -> Request | None:
    """The unsubscribe a token asks for, or None when the token is not one we signed.

    `scope_mode` is `web.unsubscribe_scope`: 'global', or 'domain' for the sending domain of
    the message (global when the send log does not know it).
    """
    if not secret or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    verp = read_token(token, secret, purpose=PURPOSE)
    if not verp.valid or verp.send_id is None:
        return None
    row = session.get(SendLog, verp.send_id)
    if row is None or not row.recipient:
        return None
    try:
        recipient = row.recipient.strip() if is_hashed(row.recipient.strip()) else normalise(row.recipient)
    except AddressError:
        return None
    scope = GLOBAL
    if scope_mode == "domain" and row.sending_domain:
        scope = f"domain:{row.sending_domain}"
    return Request(row.id, recipient, row.campaign, row.sending_domain, scope)


def unsubscribe(session: Session, req: Request, *, now: datetime, method: str) -> tuple[Suppression, bool]:
    """Suppress the recipient (for good); (row, created). Asking twice changes nothing."""
    return add_suppression(session, req.recipient, reason=REASON, source="unsubscribe", now=now, scope=req.scope,
                           event_table="send_log", event_id=req.send_id, details=req.details(method))


def masked(address: str) -> str:
    """`b•••@example.net`: enough for the recipient to recognise, little for anyone else."""
    if is_hashed(address):
        return "(an erased address)"
    local, domain = split_address(address)
    return f"{local[:1]}\u2022\u2022\u2022@{domain}"
