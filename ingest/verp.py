"""Return paths that say who bounced: classic VERP and the signed send-log token.

DESIGN.md fixes both forms:
- classic  `bounces+LOCAL=DOMAIN@sender-domain` names the recipient, readable by anyone;
- signed   `bounces+t-TOKEN@sender-domain`, TOKEN being the send-log id and a truncated HMAC
  in base32 (at most 40 characters, so the local part stays under 64 octets).

The sender encodes with these functions and the collectors decode with them.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from store.addresses import split_address

PREFIX = "bounces"
MAC_BYTES = 10  # 80 bits: forging one takes ~2**80 tries
MAX_ID = 2 ** 64 - 1
_CONTEXT = b"postwatch-verp-v1\0"


@dataclass(frozen=True)
class Verp:
    """What one return path says. `valid` is False for a token whose HMAC does not match."""

    kind: str  # classic | token
    recipient: str | None = None
    send_id: int | None = None
    token: str | None = None
    valid: bool = True


def encode_classic(recipient: str, domain: str, prefix: str = PREFIX) -> str:
    local, _, rdomain = recipient.rpartition("@")  # as written: the return path carries it unchanged
    if not local or not rdomain:
        raise ValueError(f"{recipient!r} is not an address")
    return f"{prefix}+{local}={rdomain}@{domain}"


def _mac(key: bytes, payload: bytes, purpose: str = "verp") -> bytes:
    context = _CONTEXT if purpose == "verp" else f"postwatch-{purpose}-v1\0".encode()
    return hmac.new(key, context + payload, hashlib.sha256).digest()[:MAC_BYTES]


def _key(secret: str | bytes) -> bytes:
    if not secret:
        raise ValueError("no VERP key configured (ingest.verp_secret)")
    return secret.encode() if isinstance(secret, str) else secret


def make_token(send_id: int, secret: str | bytes, purpose: str = "verp") -> str:
    """A send-log id and its truncated HMAC, in base32. `purpose` keeps tokens made for one
    use (the return path, an unsubscribe link) from being accepted for another."""
    if not 0 <= send_id <= MAX_ID:
        raise ValueError("send id out of range")
    payload = send_id.to_bytes(max(1, (send_id.bit_length() + 7) // 8), "big")
    return base64.b32encode(payload + _mac(_key(secret), payload, purpose)).decode().rstrip("=").lower()


def encode_token(send_id: int, secret: str | bytes, domain: str, prefix: str = PREFIX) -> str:
    return f"{prefix}+t-{make_token(send_id, secret)}@{domain}"


def read_token(token: str, secret: str | bytes | None, purpose: str = "verp") -> Verp:
    """Decode TOKEN; a token that is malformed or fails its HMAC comes back `valid=False`."""
    try:
        text = token.upper()
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (ValueError, base64.binascii.Error):
        return Verp("token", token=token, valid=False)
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not payload or len(payload) > 8 or not secret:
        return Verp("token", token=token, valid=False)
    if not hmac.compare_digest(mac, _mac(_key(secret), payload, purpose)):
        return Verp("token", token=token, valid=False)
    return Verp("token", send_id=int.from_bytes(payload, "big"), token=token)


def decode(address: str, secret: str | bytes | None = None, prefix: str = PREFIX) -> Verp | None:
    """Read a return path; None when it is not one of ours."""
    local, domain = split_address(address)
    if not domain:
        return None
    head, plus, rest = local.partition("+")
    if not plus or head.lower() != prefix or not rest:
        return None
    if rest[:2].lower() == "t-" and "=" not in rest:
        return read_token(rest[2:], secret)
    rlocal, eq, rdomain = rest.rpartition("=")
    if not eq or not rlocal or "." not in rdomain:
        return None
    return Verp("classic", recipient=f"{rlocal}@{rdomain}".lower())
