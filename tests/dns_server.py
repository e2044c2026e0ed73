"""A small authoritative DNS server on loopback (dnslib), for tests of MX, DNSBL and record checks.

    server = LocalDNS(); server.add("example.com", "MX", "10 mx.example.com."); server.start()
    DnsConfig(nameservers=(server.address,))

`server.fail(name, "SERVFAIL")` answers that name with SERVFAIL; `server.fail(name, "timeout")`
never answers it, so the look-up times out.
"""
from __future__ import annotations

import threading
from collections import defaultdict

from dnslib import QTYPE, RCODE, RR
from dnslib.dns import DNSError
from dnslib.server import BaseResolver, DNSServer


class _Zone(BaseResolver):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.lock = threading.Lock()
        self.queries: list[tuple[str, str]] = []
        self.failures: dict[str, str] = {}  # name -> SERVFAIL | timeout

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((qname, qtype))
            answers = list(self.records.get((qname, qtype), []))
            exists = any(name == qname for name, _ in self.records)
            failure = self.failures.get(qname)
        if failure == "timeout":
            raise DNSError(f"not answering {qname} (a time-out, on purpose)")  # the server sends nothing
        if failure:
            reply.header.rcode = getattr(RCODE, failure)
            return reply
        for value in answers:
            reply.add_answer(*RR.fromZone(f"{qname}. 60 IN {qtype} {value}"))
        if not answers and not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class LocalDNS:
    def __init__(self) -> None:
        self.zone = _Zone()
        self.server: DNSServer | None = None

    def add(self, name: str, rtype: str, value: str) -> None:
        with self.zone.lock:
            self.zone.records[(name.rstrip(".").lower(), rtype.upper())].append(value)

    def fail(self, name: str, how: str = "SERVFAIL") -> None:
        """Answer `name` with an error code (SERVFAIL, REFUSED) or, with "timeout", not at all."""
        with self.zone.lock:
            self.zone.failures[name.rstrip(".").lower()] = how

    def clear(self) -> None:
        with self.zone.lock:
            self.zone.records.clear()
            self.zone.queries.clear()
            self.zone.failures.clear()

    @property
    def queries(self) -> list[tuple[str, str]]:
        with self.zone.lock:
            return list(self.zone.queries)

    def start(self) -> "LocalDNS":
        self.server = DNSServer(self.zone, port=0, address="127.0.0.1")
        self.server.start_thread()
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server.server_address[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
