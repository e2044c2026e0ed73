"""How each ESP's webhook proves it is the ESP, checked the way the provider documents it.

- SNS (Amazon SES): the message signature, SignatureVersion 1 (SHA1withRSA) or 2
  (SHA256withRSA) over the canonical string of the message's fields, with the certificate at
  SigningCertURL, which must be https on an SNS host; certificates are cached by URL.
- SendGrid: the ECDSA (P-256, SHA-256) signature of timestamp + raw body, with the
  configured verification key.
- Mailgun: HMAC-SHA256 of timestamp + token with the signing key; the timestamp must be
  recent, and a token is taken once (store.webhooks).
- Postmark: basic auth, or a secret in a header of one's choosing.

Each check returns None when the request is genuine, else a `Refusal` (401: nothing to check,
403: checked and wrong).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
SUBSCRIPTION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
FETCH_TIMEOUT = 10.0
MAX_CERTIFICATES = 64

Fetch = Callable[[str], bytes]


@dataclass(frozen=True)
class Refusal:
    status: int  # 401 or 403
    reason: str


def fetch_url(url: str) -> bytes:
    """GET `url` (an SNS certificate, a SubscribeURL), at most 1 MB."""
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as resp:  # noqa: S310 (https SNS hosts only)
        return resp.read(1024 * 1024)


def sns_url_refusal(url: Any, what: str) -> str | None:
    """Why `url` is not one postwatch fetches for SNS (https on an SNS host), or None."""
    if not isinstance(url, str):
        return f"the message has no {what}"
    parts = urlsplit(url)
    if parts.scheme != "https":
        return f"{what} {url!r} is not https"
    if not SNS_HOST.match(parts.hostname or "") or parts.port not in (None, 443):
        return f"{what} {url!r} is not on an SNS host (sns.REGION.amazonaws.com)"
    return None


class SnsVerifier:
    """Checks SNS message signatures; the signing certificates are fetched once per URL."""

    def __init__(self, fetch: Fetch = fetch_url) -> None:
        self.fetch = fetch
        self._certs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def preload(self, url: str, pem: bytes) -> None:
        with self._lock:
            self._certs[url] = x509.load_pem_x509_certificate(pem).public_key()

    def _key(self, url: str) -> Any:
        with self._lock:
            key = self._certs.get(url)
        if key is None:
            key = x509.load_pem_x509_certificate(self.fetch(url)).public_key()
            with self._lock:
                if len(self._certs) >= MAX_CERTIFICATES:
                    self._certs.clear()
                self._certs[url] = key
        return key

    def check(self, message: Mapping[str, Any]) -> Refusal | None:
        version = message.get("SignatureVersion")
        digest = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(version))
        signature = message.get("Signature")
        if not signature or digest is None:
            return Refusal(401, f"the SNS message has no Signature of a known SignatureVersion (1 or 2), "
                                f"not {version!r}")
        problem = sns_url_refusal(message.get("SigningCertURL"), "SigningCertURL")
        if problem:
            return Refusal(403, problem)
        try:
            key = self._key(message["SigningCertURL"])
        except Exception as exc:  # an unreachable or unreadable certificate: cannot be checked
            return Refusal(403, f"the SNS signing certificate could not be read: {type(exc).__name__}: {exc}")
        if not isinstance(key, rsa.RSAPublicKey):
            return Refusal(403, "the SNS signing certificate does not hold an RSA key")
        try:
            key.verify(base64.b64decode(signature, validate=True), canonical(message), padding.PKCS1v15(), digest)
        except (InvalidSignature, binascii.Error, ValueError):
            return Refusal(403, "the SNS message signature does not match its content")
        return None


def canonical(message: Mapping[str, Any]) -> bytes:
    """The string SNS signs: "Key\\nValue\\n" for each signed field present, in this order."""
    names = NOTIFICATION_FIELDS if message.get("Type") == "Notification" else SUBSCRIPTION_FIELDS
    return "".join(f"{k}\n{message[k]}\n" for k in names if message.get(k) is not None).encode()


def sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """The configured verification key: base64 DER (as SendGrid shows it), or PEM."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
    else:
        key = serialization.load_der_public_key(base64.b64decode(text))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("webhooks.sendgrid_public_key is not an elliptic-curve (ECDSA) public key")
    return key


def check_sendgrid(key: ec.EllipticCurvePublicKey, headers: Mapping[str, str], raw: bytes, *,
                   now: datetime | None = None, max_age: timedelta | None = None) -> Refusal | None:
    """The ECDSA signature of timestamp + body; and, with `max_age`, the signed timestamp's age
    (SendGrid documents no limit: a retried or replayed body is stored once anyway)."""
    signature, timestamp = headers.get(SENDGRID_SIGNATURE), headers.get(SENDGRID_TIMESTAMP)
    if not signature or not timestamp:
        return Refusal(401, f"the request has no {SENDGRID_SIGNATURE} and {SENDGRID_TIMESTAMP} headers "
                            "(turn on the Signed Event Webhook)")
    try:
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + raw, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return Refusal(403, "the SendGrid signature does not match the timestamp and body")
    if max_age and now is not None:
        return _too_old("SendGrid", timestamp, now, max_age, "webhooks.sendgrid_max_age_minutes")
    return None


def check_mailgun(secret: str, signature: Any, now: datetime, max_age: timedelta) -> Refusal | None:
    """The HMAC and the timestamp (the token's first use is the store's to say)."""
    if not isinstance(signature, dict) or not all(isinstance(signature.get(k), (str, int))
                                                  for k in ("timestamp", "token", "signature")):
        return Refusal(401, "the Mailgun webhook has no signature {timestamp, token, signature}")
    timestamp, token = str(signature["timestamp"]), str(signature["token"])
    expected = hmac.new(secret.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature["signature"]).lower()):
        return Refusal(403, "the Mailgun signature does not match its timestamp and token")
    return _too_old("Mailgun", timestamp, now, max_age, "webhooks.mailgun_max_age_minutes")


def _too_old(provider: str, timestamp: str, now: datetime, max_age: timedelta, key: str) -> Refusal | None:
    """A refusal when the signed Unix time is not one, or is further than `max_age` from now."""
    try:
        signed = datetime.fromtimestamp(int(timestamp), timezone.utc)
    except (ValueError, OverflowError, OSError):
        return Refusal(403, f"the {provider} signature timestamp {timestamp!r} is not a Unix time")
    if abs(now - signed) > max_age:
        return Refusal(403, f"the {provider} signature is from {signed:%Y-%m-%d %H:%M:%S}Z, more than "
                            f"{int(max_age.total_seconds() // 60)} minutes from now ({key})")
    return None


def check_postmark(headers: Mapping[str, str], *, username: str, password: str, secret: str,
                   secret_header: str) -> Refusal | None:
    """Basic auth when a user name is configured, the secret header when a secret is; either will do."""
    given_auth = headers.get("Authorization", "")
    given_secret = headers.get(secret_header, "")
    if not (given_auth or given_secret):
        return Refusal(401, f"the request has neither basic auth nor the {secret_header} header")
    ok = False
    if username and given_auth.lower().startswith("basic "):
        try:
            user, _, word = base64.b64decode(given_auth[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            user, word = "", ""
        ok |= hmac.compare_digest(user.encode(), username.encode()) & hmac.compare_digest(word.encode(),
                                                                                            password.encode())
    if secret and given_secret:
        ok |= hmac.compare_digest(given_secret.encode(), secret.encode())
    return None if ok else Refusal(403, "the Postmark credentials are not the configured ones")
