"""DNS look-ups for the analysis (MX of recipient domains, DNSBL zones, SPF/DMARC records).

One resolver, built from the [dns] section, so that tests point every look-up at a local
server and production uses the system resolver.
"""
from __future__ import annotations

import dns.exception
import dns.resolver

from analysis.config import DnsConfig
from store.netloc import HostPortError, parse_hostport


def failure(exc: dns.exception.DNSException) -> str:
    """A failed look-up in a few words a person reads: 'time-out', 'SERVFAIL', ..."""
    if isinstance(exc, dns.exception.Timeout):
        return "time-out"
    if isinstance(exc, dns.resolver.NoNameservers):
        text = str(exc)
        for rcode in ("SERVFAIL", "REFUSED"):
            if rcode in text:
                return f"{rcode} from the DNS server"
        return "no DNS server answered"
    return type(exc).__name__


def make_resolver(config: DnsConfig) -> dns.resolver.Resolver:
    if not config.nameservers:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        hosts, ports = [], set()
        for entry in config.nameservers:  # HOST, HOST:PORT, an IPv6 address, or [ADDRESS]:PORT
            host, port = parse_hostport(entry, default_port=0, key="dns.nameservers")
            if not host:
                raise HostPortError(f"{entry!r} is not HOST:PORT (dns.nameservers): no host")
            hosts.append(host)
            if port:
                ports.add(port)
        if len(ports) > 1:
            raise ValueError("dns.nameservers: all servers must use the same port")
        resolver.nameservers = hosts
        if ports:
            resolver.port = ports.pop()
    resolver.lifetime = config.timeout
    resolver.timeout = config.timeout
    return resolver
