"""store.addresses: the one domain split (domain_of / split_address) and the normaliser."""
from __future__ import annotations

import pytest

from store.addresses import AddressError, domain_of, normalise, split_address


@pytest.mark.parametrize("address,expected", [
    ("bob@Example.COM", ("bob", "example.com")),
    ("<Bob@example.org.>", ("Bob", "example.org")),
    ("  alice@mail.example.net  ", ("alice", "mail.example.net")),
    ('"a@b"@example.org', ('"a@b"', "example.org")),
    ("postmaster", ("postmaster", "")),
    ("", ("", "")),
    (None, ("", "")),
    ("@example.org", ("", "example.org")),
])
def test_split_address(address, expected):
    assert split_address(address) == expected


def test_domain_of_is_lower_case_and_empty_without_at():
    assert domain_of("Bounces+x@Mail.Example.ORG>") == "mail.example.org"
    assert domain_of("no-at-sign") == ""


def test_domain_of_agrees_with_normalise_on_ascii_addresses():
    for address in ("Bob@Example.COM", "<x@y.example.>", "a.b+c@sub.example.org"):
        assert normalise(address).rpartition("@")[2] == domain_of(address)


def test_normalise_refuses_what_is_not_an_address():
    with pytest.raises(AddressError):
        normalise("postmaster")
