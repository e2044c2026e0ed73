from analysis.dns import DnsConfig, make_resolver


def test_the_resolver_asks_the_configured_server(dns_server):
    dns_server.add("example.com", "MX", "10 mx1.example.com.")
    dns_server.add("2.0.0.127.zen.example.org", "A", "127.0.0.2")
    resolver = make_resolver(DnsConfig(nameservers=(dns_server.address,), timeout=2))
    mx = sorted(str(r.exchange) for r in resolver.resolve("example.com", "MX"))
    assert mx == ["mx1.example.com."]
    assert [r.address for r in resolver.resolve("2.0.0.127.zen.example.org", "A")] == ["127.0.0.2"]
    assert ("example.com", "MX") in dns_server.queries
