"""An SPF record read the way a receiver reads it (RFC 7208), without a message to judge.

It checks the syntax, counts the mechanisms that cost a DNS look-up — include, a, mx, ptr,
exists and the redirect modifier — through every include and redirect, against the limit of
10, counts void look-ups (names that return nothing) against the limit of 2, and collects the
networks the record authorises so that each configured sending IP can be checked against it.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import dns.exception
import dns.resolver

from analysis.dns import failure

LOOKUP_LIMIT = 10
VOID_LIMIT = 2
MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
COSTS_A_LOOKUP = ("include", "a", "mx", "ptr", "exists")
_TERM = re.compile(r"^([+\-~?]?)([a-z0-9]+)(?:([:/=])(.*))?$", re.I)


class DnsTrouble(Exception):
    """The DNS did not answer (time-out, SERVFAIL): the check cannot say anything."""


def txt_records(resolver: dns.resolver.Resolver, name: str) -> list[str] | None:
    """The TXT strings at `name` (each record's strings joined); None when the name has none."""
    try:
        answer = resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    except dns.exception.DNSException as exc:
        raise DnsTrouble(f"no answer for {name} TXT ({failure(exc)})") from None
    return sorted(b"".join(r.strings).decode("utf-8", "replace") for r in answer)


def addresses(resolver: dns.resolver.Resolver, name: str, rtypes=("A", "AAAA")) -> list[str]:
    out = []
    for rtype in rtypes:
        try:
            out += [r.address for r in resolver.resolve(name, rtype)]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            raise DnsTrouble(f"no answer for {name} {rtype} ({failure(exc)})") from None
    return sorted(out)


def spf_record(records: list[str] | None) -> tuple[str | None, str | None]:
    """(the one v=spf1 record, or None; an error when there are several)."""
    spf = [r for r in records or [] if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
    if len(spf) > 1:
        return spf[0], f"{len(spf)} SPF records: receivers treat that as a permanent error"
    return (spf[0] if spf else None), None


@dataclass
class SpfResult:
    record: str | None = None
    lookups: int = 0
    void_lookups: int = 0
    includes: list[str] = field(default_factory=list)  # every domain visited through include/redirect
    all_qualifier: str | None = None
    networks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.record is None:
            return "missing"
        return "error" if self.errors else "warning" if self.warnings else "ok"


def check_spf(resolver: dns.resolver.Resolver, domain: str, sending_ips: tuple[str, ...] = ()) -> SpfResult:
    result = SpfResult()
    records = txt_records(resolver, domain)
    record, error = spf_record(records)
    if record is None:
        return result
    result.record = record
    if error:
        result.errors.append(error)
    _walk(resolver, domain, record, result, seen={domain}, top=True)
    if result.lookups > LOOKUP_LIMIT:
        result.errors.append(f"{result.lookups} DNS-querying mechanisms (include, a, mx, ptr, exists, redirect) "
                             f"counted through the includes: more than {LOOKUP_LIMIT}, receivers answer permerror")
    if result.void_lookups > VOID_LIMIT:
        result.errors.append(f"{result.void_lookups} look-ups returned nothing (more than {VOID_LIMIT} is a "
                             "permerror at receivers)")
    nets = [ipaddress.ip_network(n, strict=False) for n in result.networks]
    for ip in sending_ips:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if not any(addr.version == n.version and addr in n for n in nets):
            result.warnings.append(f"sending IP {ip} is not authorised by the record (ip4/ip6/a/mx, includes "
                                   "followed; exists and ptr are not evaluated)")
    result.includes.sort()
    result.networks = sorted(set(result.networks))
    return result


def _walk(resolver, domain: str, record: str, result: SpfResult, seen: set[str], top: bool) -> None:
    redirect = None
    has_all = False
    for term in record.split()[1:]:
        m = _TERM.match(term)
        if not m:
            result.errors.append(f"{domain}: cannot read the term {term!r}")
            continue
        qualifier, name, sep, value = m.group(1), m.group(2).lower(), m.group(3), m.group(4)
        if sep == "=":  # a modifier
            if name == "redirect":
                redirect = value
            elif name != "exp" and not re.match(r"^[a-z][a-z0-9_.\-]*$", name):
                result.errors.append(f"{domain}: bad modifier {term!r}")
            continue
        if name not in MECHANISMS:
            result.errors.append(f"{domain}: unknown mechanism {term!r}")
            continue
        if name in COSTS_A_LOOKUP:
            result.lookups += 1
        if name == "all":
            has_all = True
            if top:
                result.all_qualifier = qualifier or "+"
                if qualifier in ("", "+"):
                    result.errors.append("'+all' lets anyone send as the domain")
                elif qualifier == "?":
                    result.warnings.append("'?all' is neutral: mail from anywhere is not failed")
        elif name in ("ip4", "ip6"):
            try:
                net = ipaddress.ip_network(value or "", strict=False)
                if (net.version == 4) != (name == "ip4"):
                    raise ValueError
                result.networks.append(str(net))
            except ValueError:
                result.errors.append(f"{domain}: bad address in {term!r}")
        elif name == "include":
            if not value:
                result.errors.append(f"{domain}: 'include' without a domain")
                continue
            _follow(resolver, value, result, seen, "include")
        elif name in ("a", "mx"):
            target, _, cidr = (value or domain).partition("/") if sep == ":" else (domain, "", value or "")
            _resolve_hosts(resolver, name, target, cidr, result)
        elif name == "ptr":
            result.warnings.append(f"{domain}: the 'ptr' mechanism is slow and discouraged (RFC 7208 5.5)")
    if redirect and not has_all:
        result.lookups += 1
        _follow(resolver, redirect, result, seen, "redirect")
    elif top and not has_all and not redirect:
        result.warnings.append("no 'all' at the end: mail from other hosts gets neutral, not fail")


def _follow(resolver, target: str, result: SpfResult, seen: set[str], how: str) -> None:
    target = target.lower().rstrip(".")
    if target in seen:
        result.errors.append(f"{how} loop through {target}")
        return
    seen.add(target)
    result.includes.append(target)
    if result.lookups > LOOKUP_LIMIT + 5:  # far past the limit: stop asking
        return
    records = txt_records(resolver, target)  # DnsTrouble: the whole record cannot be judged
    record, error = spf_record(records)
    if record is None:
        result.void_lookups += records is None
        result.errors.append(f"{how}:{target} has no SPF record (permerror at receivers)")
        return
    if error:
        result.errors.append(f"{target}: {error}")
    _walk(resolver, target, record, result, seen, top=False)


def _resolve_hosts(resolver, mechanism: str, target: str, cidr: str, result: SpfResult) -> None:
    cidr4 = cidr.split("/")[0] if cidr else ""
    # a DnsTrouble goes up: a record whose names the DNS did not answer cannot be judged
    if mechanism == "a":
        hosts = [target]
    else:
        try:
            hosts = sorted(str(r.exchange).rstrip(".") for r in resolver.resolve(target, "MX"))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            result.void_lookups += 1
            return
        except dns.exception.DNSException as exc:
            raise DnsTrouble(f"no answer for {target} MX ({failure(exc)})") from None
    found = []
    for host in hosts[:10]:
        found += addresses(resolver, host)
    if not found:
        result.void_lookups += 1
    for addr in found:
        ip = ipaddress.ip_address(addr)
        prefix = cidr4 if (cidr4 and ip.version == 4) else ""
        result.networks.append(str(ipaddress.ip_network(f"{addr}/{prefix}" if prefix else addr, strict=False)))
