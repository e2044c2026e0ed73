from analysis.dns import DnsConfig, make_resolver


def test_the_resolver_asks_the_configured_server(dns_server):
    dns_server.add("example.com", "MX", "10 mx1.example.com.")
    dns_server.add("2.0.0.127.zen.example.org", "A", "127.0.0.2")
    resolver = make_resolver(DnsConfig(nameservers=(dns_server.address,), timeout=2))
    mx = sorted(str(r.exchange) for r in resolver.resolve("example.com", "MX"))
    assert mx == ["mx1.example.com."]
    assert [r.address for r in resolver.resolve("2.0.0.127.zen.example.org", "A")] == ["127.0.0.2"]
    assert ("example.com", "MX") in dns_server.queries


def test_nameservers_are_host_port_ipv6_in_brackets():
    import pytest

    from store.netloc import HostPortError

    resolver = make_resolver(DnsConfig(nameservers=("[::1]:5353", "127.0.0.1:5353"), timeout=2))
    assert (resolver.nameservers, resolver.port) == (["::1", "127.0.0.1"], 5353)
    resolver = make_resolver(DnsConfig(nameservers=("2001:db8::53", "192.0.2.53"), timeout=2))
    assert (resolver.nameservers, resolver.port) == (["2001:db8::53", "192.0.2.53"], 53)
    with pytest.raises(ValueError, match="same port"):
        make_resolver(DnsConfig(nameservers=("[::1]:5353", "127.0.0.1:53")))
    for bad in ("[::1", "127.0.0.1:dns", ":53"):
        with pytest.raises(HostPortError, match=r"\(dns\.nameservers\)"):
            make_resolver(DnsConfig(nameservers=(bad,)))
