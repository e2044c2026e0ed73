"""The one address normaliser, and the salted hash kept of an erased address.

Every suppression, look-up and erasure goes through `normalise`, so `Bob@Exämple.com ` and
`bob@xn--exmple-cua.com` are the same recipient everywhere.
"""
from __future__ import annotations

import hashlib
import hmac

import idna

HASH_PREFIX = "hmac-sha256:"  # how an erased address is shown in the list and the feed


class AddressError(ValueError):
    """Not an e-mail address; the message says what is wrong with it."""


def normalise(address: str) -> str:
    """Lower-case, trimmed, the domain in IDNA (A-label) form.

    Surrounding angle brackets and a trailing dot on the domain are dropped. Raises
    `AddressError` for anything that is not `local@domain`.
    """
    text = (address or "").strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise AddressError(f"{address!r} is not an e-mail address (expected local@domain)")
    if any(c.isspace() for c in text):
        raise AddressError(f"{address!r} is not an e-mail address (it contains a space)")
    domain = domain.rstrip(".").lower()
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise AddressError(f"{address!r} has a domain that is not a valid name: {exc}") from None
    if not domain or ".." in domain:
        raise AddressError(f"{address!r} has no valid domain")
    return f"{local.lower()}@{domain}"


def try_normalise(address: str | None) -> str | None:
    """`normalise`, or None for a missing or malformed address (events may carry either)."""
    if not address:
        return None
    try:
        return normalise(address)
    except AddressError:
        return None


def address_hash(address: str, salt: str) -> str:
    """HMAC-SHA256 of the normalised address keyed by `salt`, as 64 hex digits."""
    if not salt:
        raise ValueError("a salt is needed to hash an address")
    return hmac.new(salt.encode(), normalise(address).encode(), hashlib.sha256).hexdigest()


def is_hashed(value: str) -> bool:
    """True for the shown form of an erased address (`hmac-sha256:<hex>`)."""
    return value.startswith(HASH_PREFIX)
