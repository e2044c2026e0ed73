"""DKIM: a message delivered over STARTTLS to a real SMTP server verifies with dkimpy against
the key published in a loopback DNS server."""
import dkim
import dns.resolver

from sender.campaign import send_campaign
from sender.dkim import Signer, keygen, record_name, txt_record, write_key
from tests.sender.helpers import make_template, settings, sink  # noqa: F401


def _dnsfunc(server):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], server.port

    def lookup(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(name.rstrip("."), "TXT", lifetime=timeout)
        except dns.exception.DNSException:
            return None
        return b"".join(b"".join(r.strings) for r in answer)

    return lookup


def _publish(dns_server, tmp_path, selector="s1", domain="send.example.com"):
    pem, public = keygen(1024)  # a short key keeps the TXT answer inside one UDP datagram
    write_key(tmp_path / "dkim.pem", pem)
    record = txt_record(public)
    dns_server.add(record_name(selector, domain), "TXT", " ".join(f'"{record[i:i + 200]}"'
                                                                  for i in range(0, len(record), 200)))
    return Signer.from_file(tmp_path / "dkim.pem", selector, domain)


def test_delivered_message_verifies_against_the_published_key(tmp_path, dns_server, sink, store):
    signer = _publish(dns_server, tmp_path)
    (tmp_path / "r.csv").write_text("email,name\nann@example.org,Ann\nchloé@xn--exmple-cua.com,Chloé\n")
    report = send_campaign(store, make_template(tmp_path / "t"), tmp_path / "r.csv", settings(sink.address),
                           signer=signer)
    assert report.counts["sent"] == 2
    assert len(sink.received) == 2 and all(m.tls for m in sink.received)  # over STARTTLS
    for m in sink.received:
        assert m.data.startswith(b"DKIM-Signature:")
        assert dkim.verify(m.data, dnsfunc=_dnsfunc(dns_server))
    assert ("s1._domainkey.send.example.com", "TXT") in dns_server.queries


def test_a_changed_message_or_another_key_does_not_verify(tmp_path, dns_server):
    signer = _publish(dns_server, tmp_path)
    raw = b"From: a@send.example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
    signed = signer.sign(raw)
    assert dkim.verify(signed, dnsfunc=_dnsfunc(dns_server))
    assert not dkim.verify(signed.replace(b"body", b"b0dy"), dnsfunc=_dnsfunc(dns_server))
    other_pem, _ = keygen(1024)
    forged = Signer("s1", "send.example.com", other_pem).sign(raw)
    assert not dkim.verify(forged, dnsfunc=_dnsfunc(dns_server))
