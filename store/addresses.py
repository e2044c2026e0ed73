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


def split_address(address: str | None) -> tuple[str, str]:
    """`(local, domain)` of an address as it was written: surrounding space and angle brackets
    dropped, the domain lower-cased without a trailing dot, the local part kept as it is
    (mailboxes may be case-sensitive). `("", "")` parts for what is missing: `domain_of`
    of a bare local part is "". The split is at the last "@" (a quoted local part may hold one).
    """
    text = (address or "").strip()
    if text.startswith("<"):
        text = text[1:]
    if text.endswith(">"):
        text = text[:-1]
    local, at, domain = text.strip().rpartition("@")
    if not at:
        return text.strip(), ""
    return local, domain.strip().rstrip(".").lower()


def domain_of(address: str | None) -> str:
    """The lower-cased domain of an address ("" when it has none): the one domain split."""
    return split_address(address)[1]


def address_hash(address: str, salt: str) -> str:
    """HMAC-SHA256 of the normalised address keyed by `salt`, as 64 hex digits."""
    if not salt:
        raise ValueError("a salt is needed to hash an address")
    return hmac.new(salt.encode(), normalise(address).encode(), hashlib.sha256).hexdigest()


def is_hashed(value: str) -> bool:
    """True for the shown form of an erased address (`hmac-sha256:<hex>`)."""
    return value.startswith(HASH_PREFIX)
