"""Where a DMARC source is, from parsedmarc's bundled IP database and reverse-DNS map, offline."""
from __future__ import annotations

import contextlib
import socket

from analysis.source_info import SourceInfo, source_info


@contextlib.contextmanager
def no_network(monkeypatch):
    """Any attempt to open a connection or resolve a name fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network use while enriching offline: {args!r}")

    with monkeypatch.context() as m:
        m.setattr(socket.socket, "connect", refuse)
        m.setattr(socket, "create_connection", refuse)
        m.setattr(socket, "getaddrinfo", refuse)
        yield


def test_a_public_address_gets_its_country_and_autonomous_system(monkeypatch):
    source_info.cache_clear()
    with no_network(monkeypatch):
        google = source_info("8.8.8.8")
        outlook = source_info("40.107.22.1")
    assert (google.country, google.asn, google.as_name) == ("US", 15169, "Google LLC")
    assert google.as_text == "AS15169 Google LLC"
    assert google.base_domain is None  # no reverse DNS is looked up
    assert google.service.startswith("Google") and google.service_type == "Email Provider"  # from the AS's domain
    assert outlook.asn == 8075 and outlook.service == "Microsoft"


def test_a_known_reverse_dns_name_gives_its_base_domain_and_service(monkeypatch):
    with no_network(monkeypatch):
        info = source_info("198.51.100.7", "o1.ptr1234.SendGrid.net.")
    assert (info.base_domain, info.service, info.service_type) == ("sendgrid.net", "Twilio SendGrid", "Marketing")
    assert info.country is None and info.as_text == ""  # a documentation address: not in the database


def test_what_is_not_an_address_gets_nothing():
    assert source_info("not an ip") == SourceInfo()
