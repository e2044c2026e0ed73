"""Mailbox providers: which provider a recipient domain's mail goes to.

The provider names and their lists are the ingest layer's vocabulary (ingest/providers.toml),
the one the bounce classifier stores on events. By the domain list first (the big consumer
domains), then — for custom domains, see `ProviderResolver` — by the host names of the
domain's MX records; what no list knows counts under `OTHER`.
"""
from __future__ import annotations

from datetime import timedelta

from analysis.config import ProvidersConfig  # noqa: F401  (re-exported)
from ingest.providers import providers as _vocabulary
from ingest.providers import suffix_lookup
from store.addresses import domain_of
from store.suppressions import utc

# provider -> its consumer domains
DOMAINS: dict[str, tuple[str, ...]] = {p.name: p.domains for p in _vocabulary().values()}
BY_DOMAIN: dict[str, str] = {d: p for p, ds in DOMAINS.items() for d in ds}
OTHER = "other"


def provider_for_domain(domain: str | None) -> str | None:
    """The provider of a consumer domain by the list alone; None when the list does not know it."""
    if not domain:
        return None
    return BY_DOMAIN.get(domain.strip().lower().rstrip("."))

# provider -> host-name suffixes of its MX (and reporting) hosts, for custom domains
MX_HOSTS: dict[str, tuple[str, ...]] = {p.name: p.hosts for p in _vocabulary().values()}
# words in a report's organisation name that name a provider ("Yahoo", "Mail.Ru", "Outlook.com")
ORG_WORDS: tuple[tuple[str, str], ...] = tuple((w, p.name) for p in _vocabulary().values() for w in p.org_words)
PROVIDERS: tuple[str, ...] = (*_vocabulary(), OTHER)


def _pairs(entries: tuple[str, ...], key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in entries:
        left, sep, right = entry.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise ValueError(f"providers.{key}: {entry!r} is not NAME=PROVIDER (e.g. example.org=google)")
        out[left.strip().lower().strip(".")] = right.strip().lower()
    return out


_SHIPPED_HOSTS = {h: p for p, hs in MX_HOSTS.items() for h in hs}


def provider_for_host(host: str | None, extra: dict[str, str] | None = None) -> str | None:
    """The provider whose MX host names end like `host`; None when unknown."""
    if not host:
        return None
    return (suffix_lookup(host, extra) if extra else None) or suffix_lookup(host, _SHIPPED_HOSTS)


def provider_for_org(org: str | None) -> str:
    """The provider behind a DMARC or TLS report's organisation name or e-mail domain."""
    if not org:
        return OTHER
    text = org.strip().lower()
    domain = domain_of(text) or text  # an organisation is named by its name, its domain or an address
    found = provider_for_domain(domain) or provider_for_host(domain)
    if found:
        return found
    for word, provider in ORG_WORDS:
        if word in text:
            return provider
    return OTHER


class ProviderResolver:
    """Recipient domain -> provider: configured domains, the shipped list, then MX hosts.

    MX answers are kept in the `recipient_domains` table for `cache_days` (and in memory for
    the life of the resolver), so each custom domain is looked up about once a week.
    """

    def __init__(self, config: ProvidersConfig | None = None, dns_config=None, clock=None) -> None:
        from store.clock import utcnow

        self.config = config or ProvidersConfig()
        self.extra_domains = _pairs(self.config.domains, "domains")
        self.extra_hosts = _pairs(self.config.mx_hosts, "mx_hosts")
        self.dns_config = dns_config
        self.clock = clock or utcnow
        self._resolver = None
        self._memory: dict[str, str] = {}

    def known(self, domain: str) -> str | None:
        """By the lists alone (no cache, no DNS)."""
        domain = domain.strip().lower().rstrip(".")
        return self.extra_domains.get(domain) or provider_for_domain(domain)

    def resolve_many(self, session, domains) -> dict[str, str]:
        """The provider of each domain; '' maps to ''. Writes new MX answers to the cache table."""
        from sqlalchemy import select

        from store.volume import RecipientDomain

        out: dict[str, str] = {}
        missing: list[str] = []
        for raw in set(domains):
            domain = (raw or "").strip().lower().rstrip(".")
            if not domain:
                out[raw] = ""
                continue
            found = self.known(domain) or self._memory.get(domain)
            if found:
                out[raw] = found
            else:
                missing.append(raw)
        if not missing:
            return out
        now = self.clock()
        names = {raw: raw.strip().lower().rstrip(".") for raw in missing}
        cached: dict[str, RecipientDomain] = {}
        values = list(set(names.values()))
        for i in range(0, len(values), 500):
            for row in session.scalars(select(RecipientDomain).where(RecipientDomain.domain.in_(values[i:i + 500]))):
                cached[row.domain] = row
        for raw, domain in names.items():
            row = cached.get(domain)
            if row is not None and utc(row.expires_at) > now:
                provider = row.provider
            elif self.config.mx_lookups and self.dns_config is not None:
                provider, hosts, ok = self._lookup_mx(domain)
                if ok:
                    expires = now + timedelta(days=self.config.cache_days)
                    if row is None:
                        row = RecipientDomain(domain=domain, provider=provider, mx=hosts, resolved_at=now,
                                              expires_at=expires)
                        session.add(row)
                        cached[domain] = row
                    else:
                        row.provider, row.mx, row.resolved_at, row.expires_at = provider, hosts, now, expires
            else:
                provider = OTHER
            self._memory[domain] = provider
            out[raw] = provider
        session.flush()
        return out

    def provider(self, session, domain: str | None) -> str:
        return self.resolve_many(session, [domain or ""])[domain or ""]

    def _lookup_mx(self, domain: str) -> tuple[str, str, bool]:
        """(provider, MX hosts, answer worth caching). NXDOMAIN / no MX is an answer; a timeout is not."""
        import dns.exception
        import dns.resolver

        from analysis.dns import make_resolver

        if self._resolver is None:
            self._resolver = make_resolver(self.dns_config)
        try:
            answer = self._resolver.resolve(domain, "MX")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return OTHER, "", True
        except dns.exception.DNSException:
            return OTHER, "", False
        hosts = sorted((r.preference, str(r.exchange).rstrip(".").lower()) for r in answer)
        for _pref, host in hosts:
            found = provider_for_host(host, self.extra_hosts)
            if found:
                return found, ",".join(h for _, h in hosts), True
        return OTHER, ",".join(h for _, h in hosts), True
