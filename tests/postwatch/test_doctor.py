"""`postwatch doctor` against a loopback DNS server (tests/dns_server.py) and a loopback TLS
server standing in for the web server's public address."""
import datetime
import json
import socket
import ssl
import threading

import pytest

from sender.dkim import keygen, write_key
from tests.postwatch.test_cli import run

D = "send.example.com"
MX = "mx.send.example.com"
WEB = "pw.example.com"
NOW = datetime.datetime.now(datetime.timezone.utc)


def make_cert(folder, name, *, days=90, start_days=-1):
    """A self-signed certificate for `name` (and its key), valid from now + start_days for `days`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = NOW + datetime.timedelta(days=start_days)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TLSServer:
    """Answers TLS handshakes on 127.0.0.1 with one certificate, like a web server's front."""

    def __init__(self, cert, key):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def stop(self):
        self.stopped = True
        self.sock.close()


@pytest.fixture
def web_tls(tmp_path):
    servers = []

    def start(**cert_args):
        server = TLSServer(*make_cert(tmp_path / "web", WEB, **cert_args))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _txt(dns_server, name, value):
    chunks = [value[i:i + 200] for i in range(0, len(value), 200)]
    dns_server.add(name, "TXT", " ".join(f'"{c}"' for c in chunks))


def setup(tmp_path, dns_server, web_tls, *, web_cert_days=90):
    """A production-like setup: every record published, every certificate valid. Returns (env, public key)."""
    pem, public = keygen(2048)
    write_key(tmp_path / "dkim.pem", pem)
    cert, key = make_cert(tmp_path / "smtp", MX)
    web = web_tls(days=web_cert_days)
    _txt(dns_server, D, "v=spf1 ip4:192.0.2.10 -all")
    _txt(dns_server, f"_dmarc.{D}", f"v=DMARC1; p=reject; rua=mailto:dmarc@{D}; ruf=mailto:dmarc@{D}")
    _txt(dns_server, f"_smtp._tls.{D}", f"v=TLSRPTv1; rua=mailto:tls-reports@{D}")
    _txt(dns_server, f"s1._domainkey.{D}", f"v=DKIM1; k=rsa; p={public}")
    dns_server.add(D, "MX", f"10 {MX}.")
    dns_server.add(WEB, "A", "127.0.0.1")
    env = {"POSTWATCH_DNS__NAMESERVERS": dns_server.address, "POSTWATCH_DNS__TIMEOUT": "2",
           "POSTWATCH_SENDER__FROM_ADDRESS": f"news@{D}", "POSTWATCH_SENDER__DKIM_KEY_FILE": "dkim.pem",
           "POSTWATCH_SENDER__DKIM_SELECTOR": "s1", "POSTWATCH_DOMAINS__SENDING_IPS": "192.0.2.10",
           "POSTWATCH_SMTP__LISTEN": "0.0.0.0:25", "POSTWATCH_SMTP__HOSTNAME": MX,
           "POSTWATCH_SMTP__TLS_CERT": str(cert), "POSTWATCH_SMTP__TLS_KEY": str(key),
           "POSTWATCH_WEB__BASE_URL": f"https://{WEB}:{web.port}",
           "POSTWATCH_INGEST__VERP_SECRET": "v" * 32, "POSTWATCH_WEB__SECRET": "w" * 32,
           "POSTWATCH_PRIVACY__SALT": "s" * 32}
    return env, public


def doctor(tmp_path, env, *args):
    proc = run(["doctor", "--json", *args], cwd=tmp_path, env=env, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def blocking(report):
    return [f for f in report["findings"] if f["severity"] == "blocking"]


def finding(findings, check, subject, words=""):
    [found] = [f for f in findings if (f["check"], f["subject"]) == (check, subject) and words in f["message"]]
    return found


def test_a_good_setup_has_nothing_blocking(tmp_path, dns_server, web_tls):
    env, _ = setup(tmp_path, dns_server, web_tls)
    code, report = doctor(tmp_path, env)
    assert blocking(report) == [] and report["ready"] is True and code == 0
    ok = {(f["check"], f["subject"]) for f in report["findings"] if f["severity"] == "ok"}
    assert {("dns", D), ("dns", f"_dmarc.{D}"), ("dns", f"_smtp._tls.{D}"), ("dkim", f"s1._domainkey.{D}"),
            ("mx", D), ("smtp", "smtp.tls_cert"), ("web", "web.base_url")} <= ok
    assert [f["message"] for f in report["findings"] if f["check"] == "mx"] == [
        f"MX {MX} receives bounces@{D}, dmarc@{D}, tls-reports@{D}"]
    # the text form says the same, never a secret's value
    text = run(["doctor"], cwd=tmp_path, env=env)
    assert "nothing blocks production" in text.stdout and "v" * 32 not in text.stdout
    assert not (tmp_path / "var").exists()  # doctor writes nothing


def test_a_broken_setup_names_each_problem_and_what_to_set(tmp_path, dns_server, web_tls):
    env, public = setup(tmp_path, dns_server, web_tls, web_cert_days=2)
    dns_server.clear()  # no SPF, no DMARC; a DKIM record of another key; the MX elsewhere
    _, other = keygen(1024)
    _txt(dns_server, f"s1._domainkey.{D}", f"v=DKIM1; k=rsa; p={other}")
    dns_server.add(D, "MX", "10 mx.elsewhere.example.")
    dns_server.add(WEB, "A", "127.0.0.1")
    env["POSTWATCH_SMTP__TLS_CERT"], env["POSTWATCH_SMTP__TLS_KEY"] = map(
        str, make_cert(tmp_path / "old", MX, days=30, start_days=-40))  # expired ten days ago
    code, report = doctor(tmp_path, env)
    assert code == 1 and report["ready"] is False
    found = blocking(report)
    spf = finding(found, "dns", D, "no SPF record")
    assert spf["fix"] == f'TXT {D} "v=spf1 ip4:192.0.2.10 -all"'
    dmarc = finding(found, "dns", f"_dmarc.{D}", "no DMARC record")
    assert dmarc["fix"].startswith(f'TXT _dmarc.{D} "v=DMARC1;')
    dkim = finding(found, "dkim", f"s1._domainkey.{D}")
    assert "holds another key" in dkim["message"] and public[:40] in dkim["fix"]
    mx = finding(found, "mx", D)
    assert "mx.elsewhere.example" in mx["message"] and mx["fix"].startswith(f"MX {D} -> {MX}")
    cert = finding(found, "smtp", "smtp.tls_cert")
    assert "expired on" in cert["message"] and cert["fix"] == "smtp.tls_cert"
    web = next(f for f in report["findings"] if f["check"] == "web")  # expires in 2 days: a warning
    assert web["severity"] == "warning" and "expires on" in web["message"] and web["fix"] == "web.base_url"


def test_a_certificate_for_another_name_and_a_mismatched_key(tmp_path, dns_server, web_tls):
    env, _ = setup(tmp_path, dns_server, web_tls)
    other_cert, other_key = make_cert(tmp_path / "x", "other.example.com")
    env["POSTWATCH_SMTP__TLS_CERT"] = str(other_cert)
    code, report = doctor(tmp_path, env, "--offline")
    messages = [f["message"] for f in blocking(report)]
    assert code == 1 and any("is for other.example.com, not mx.send.example.com" in m for m in messages)
    assert any("is not the key of" in m for m in messages)


def test_offline_asks_no_dns_and_the_json_shape(tmp_path, dns_server, web_tls):
    env, _ = setup(tmp_path, dns_server, web_tls)
    before = len(dns_server.queries)
    code, report = doctor(tmp_path, env, "--offline")
    assert len(dns_server.queries) == before
    assert code == 0 and set(report) == {"ready", "source", "configured", "secrets_file", "secrets", "findings"}
    assert all(set(f) == {"check", "severity", "subject", "message", "fix"} for f in report["findings"])
    assert {f["severity"] for f in report["findings"]} <= {"blocking", "warning", "ok"}
    assert any(f["check"] == "dns" and "--offline" in f["message"] for f in report["findings"])
    assert report["configured"]["sender"]["dkim_key_file"] == "dkim.pem"
    assert report["secrets"] == [{"key": k, "state": "set", "file": ""}
                                 for k in ("ingest.verp_secret", "web.secret", "privacy.salt")]
    assert "v" * 32 not in json.dumps(report)


def test_doctor_says_what_was_generated_and_where(tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secrets.toml").write_text('[ingest]\nverp_secret = "made-earlier-0123456789"\n')
    (tmp_path / "var" / "secrets.toml").chmod(0o644)
    code, report = doctor(tmp_path, {}, "--offline")
    assert code == 1  # the defaults are not production
    states = {row["key"]: row for row in report["secrets"]}
    assert states["ingest.verp_secret"] == {"key": "ingest.verp_secret", "state": "generated",
                                            "file": "var/secrets.toml"}
    assert states["web.secret"]["state"] == "missing"
    mode = next(f for f in report["findings"] if f["subject"] == "var/secrets.toml")
    assert mode["severity"] == "warning" and mode["fix"] == "chmod 600 var/secrets.toml"
    defaults = {(f["check"], f["subject"]) for f in blocking(report)}
    assert {("sender", "sender.from_address"), ("sender", "sender.dkim_key_file"), ("web", "web.base_url"),
            ("smtp", "smtp.tls_cert")} <= defaults
    assert "made-earlier" not in json.dumps(report)
