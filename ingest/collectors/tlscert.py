"""The SMTP collector's STARTTLS context, and the self-signed certificate it uses when the
operator configured none (local use)."""
from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from ingest.config import SMTPConfig

log = logging.getLogger(__name__)
smtp_log = logging.getLogger("ingest.collectors.smtp")  # the collector's log, where operators look


def ensure_self_signed(folder: Path, hostname: str) -> tuple[Path, Path]:
    """Make (once) and return (certificate, key) paths under `folder`."""
    cert, key = folder / "selfsigned.crt", folder / "selfsigned.key"
    if cert.is_file() and key.is_file():
        return cert, key
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64] or "postwatch")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=3650))
                   .add_extension(x509.SubjectAlternativeName([
                       x509.DNSName(hostname or "postwatch"), x509.DNSName("localhost"),
                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .sign(private, hashes.SHA256()))
    tmp_key = key.with_suffix(".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.replace(tmp_key, key)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    log.info("made a self-signed certificate at %s", cert)
    return cert, key


def tls_context(config: SMTPConfig, spool_dir: Path, hostname: str) -> ssl.SSLContext | None:
    """The STARTTLS context: the configured certificate, or a self-signed one made once."""
    if not config.starttls:
        return None
    cert, key = config.tls_cert, config.tls_key
    if bool(cert) != bool(key):
        raise ValueError("smtp.tls_cert and smtp.tls_key go together: set both, or neither for a self-signed certificate")
    if not cert:
        cert, key = ensure_self_signed(spool_dir / "tls", hostname)
        smtp_log.warning("smtp: no certificate configured (smtp.tls_cert); STARTTLS uses a self-signed one "
                    "at %s - fine for tests, set a real one on a public MX", cert)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the STARTTLS certificate {cert} / key {key}: {exc}") from None
    return ctx
