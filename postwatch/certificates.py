"""TLS certificates as `postwatch doctor` judges them: a PEM file and its key, the certificate a
server presents, and whether one is in date and names the host it serves."""
from __future__ import annotations

import socket
import ssl
from datetime import datetime, timedelta
from pathlib import Path

EXPIRY_WARNING = timedelta(days=14)  # a certificate closer than this to its end is a warning


def read(path: str) -> object:
    """The first certificate of a PEM file (a ValueError that says why not)."""
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes())[0]
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"{path} holds no PEM certificate") from None


def check_key(cert, key_path: str, cert_path: str) -> None:
    """A ValueError unless `key_path` holds the private key of `cert`."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except OSError as exc:
        raise ValueError(f"cannot read {key_path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise ValueError(f"{key_path} holds no PEM private key without a passphrase") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, spki)
            != cert.public_key().public_bytes(serialization.Encoding.DER, spki)):
        raise ValueError(f"{key_path} is not the key of {cert_path}")


def presented(ip: str, port: int, host: str, timeout: float) -> object:
    """The certificate a TLS server at ip:port presents for `host` (OSError, ssl.SSLError)."""
    from cryptography import x509

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # its dates and names are judged by problems(), in words
    with socket.create_connection((ip, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def problems(cert, name: str, now: datetime, where: str) -> list[tuple[bool, str]]:
    """What is wrong with `cert` for serving `name` now: (blocks production, sentence) each."""
    out = []
    end, start = cert.not_valid_after_utc, cert.not_valid_before_utc
    if end <= now:
        out.append((True, f"the certificate of {where} expired on {end:%Y-%m-%d}"))
    elif end - now < EXPIRY_WARNING:
        out.append((False, f"the certificate of {where} expires on {end:%Y-%m-%d}, in {(end - now).days} day(s)"))
    if start > now:
        out.append((True, f"the certificate of {where} is valid only from {start:%Y-%m-%d}"))
    shown = names(cert)
    if not any(_matches(pattern, name) for pattern in shown):
        out.append((True, f"the certificate of {where} is for {', '.join(shown) or 'no name'}, not {name}"))
    return out


def names(cert) -> list[str]:
    """The names a certificate serves: its subject alternative names, else its common name."""
    from cryptography import x509

    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [a.value.lower() for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return [n.lower() for n in alt.get_values_for_type(x509.DNSName)] + [
        str(ip) for ip in alt.get_values_for_type(x509.IPAddress)]


def _matches(pattern: str, name: str) -> bool:
    if pattern.startswith("*."):  # a wildcard stands for one label
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name
