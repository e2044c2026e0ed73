"""DKIM: sign outgoing messages (dkimpy), make a key pair and the DNS record that publishes it."""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

# what the signature covers: the headers a receiver shows or acts on, and ours
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
                  b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id")


class DkimError(ValueError):
    """A key that cannot be read or used; the message says which and why."""


@dataclass(frozen=True)
class Signer:
    selector: str
    domain: str
    key: bytes  # PEM private key

    @classmethod
    def from_file(cls, path: str | os.PathLike, selector: str, domain: str) -> "Signer":
        try:
            key = Path(path).read_bytes()
        except OSError as exc:
            raise DkimError(f"cannot read the DKIM key {path}: {exc.strerror}") from None
        if b"PRIVATE KEY" not in key:
            raise DkimError(f"{path} is not a PEM private key (make one with: postwatch dkim keygen)")
        return cls(selector, domain.lower(), key)

    def sign(self, message: bytes) -> bytes:
        """`message` with a DKIM-Signature header in front (relaxed/relaxed, rsa-sha256)."""
        import dkim

        try:
            header = dkim.sign(message, self.selector.encode(), self.domain.encode(), self.key,
                               canonicalize=(b"relaxed", b"relaxed"), include_headers=list(SIGNED_HEADERS))
        except dkim.DKIMException as exc:
            raise DkimError(f"DKIM signing failed: {exc}") from None
        return header + message


def keygen(bits: int = 2048) -> tuple[bytes, str]:
    """(PEM private key, the base64 public key for the p= tag)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return pem, public_key(pem)


def public_key(pem: bytes) -> str:
    """The base64 public key (the p= tag) of a PEM private key; a DkimError when it is not one."""
    from cryptography.hazmat.primitives import serialization

    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise DkimError(f"not a PEM private key without a passphrase ({exc})") from None
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def txt_record(public_b64: str) -> str:
    return f"v=DKIM1; k=rsa; p={public_b64}"


def zone_text(record: str) -> str:
    """The record as zone-file strings: quoted, at most 255 characters each (RFC 1035)."""
    return " ".join(f'"{record[i:i + 255]}"' for i in range(0, len(record), 255))


def record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def write_key(path: str | os.PathLike, pem: bytes) -> None:
    """Write the private key readable by its owner only; refuses to replace an existing file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
