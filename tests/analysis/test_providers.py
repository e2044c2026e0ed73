"""Mailbox providers: the domain list first, then MX hosts through the loopback DNS server, cached."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from analysis.dns import DnsConfig
from analysis.providers import (ProviderResolver, ProvidersConfig, provider_for_domain, provider_for_host,
                                provider_for_org)
from store.volume import RecipientDomain
from tests.clock import Clock

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


def test_the_list_the_hosts_and_the_report_organisations():
    assert provider_for_domain("GMail.com.") == "google"
    assert provider_for_domain("web.de") == "gmx" and provider_for_domain("aol.com") == "yahoo"
    assert provider_for_host("example-com.mail.protection.outlook.com.") == "microsoft"
    assert provider_for_host("mta7.am0.yahoodns.net") == "yahoo"
    assert provider_for_host("aspmx.l.google.com") == "google"
    assert provider_for_host("mx.example.net") is None
    assert provider_for_org("google.com") == "google"
    assert provider_for_org("Yahoo") == "yahoo"
    assert provider_for_org("Mail.Ru") == "mailru"
    assert provider_for_org("dmarcreport@microsoft.com") == "microsoft"
    assert provider_for_org("Some ISP") == "other"


def test_custom_domains_by_mx_cached_in_the_database(store, dns_server):
    dns_server.add("corp.example", "MX", "10 corp-example.mail.protection.outlook.com.")
    dns_server.add("shop.example", "MX", "5 aspmx.l.google.com.")
    dns_server.add("shop.example", "MX", "10 alt1.aspmx.l.google.com.")
    dns_server.add("self.example", "MX", "10 mx.self.example.")
    clock = Clock(NOW)
    resolver = ProviderResolver(ProvidersConfig(cache_days=7), DnsConfig(nameservers=(dns_server.address,), timeout=2),
                                clock)
    with store() as s, s.begin():
        got = resolver.resolve_many(s, ["corp.example", "shop.example", "self.example", "nowhere.example",
                                        "gmail.com", ""])
    assert got == {"corp.example": "microsoft", "shop.example": "google", "self.example": "other",
                   "nowhere.example": "other", "gmail.com": "google", "": ""}
    assert ("gmail.com", "MX") not in dns_server.queries  # the list answered
    with store() as s:
        rows = {r.domain: r for r in s.scalars(select(RecipientDomain))}
    assert rows["shop.example"].mx == "aspmx.l.google.com,alt1.aspmx.l.google.com"
    assert rows["nowhere.example"].provider == "other"  # NXDOMAIN is an answer, kept too
    # a new resolver (a new process) answers from the database, not from DNS
    asked = len(dns_server.queries)
    again = ProviderResolver(ProvidersConfig(), DnsConfig(nameservers=(dns_server.address,), timeout=2), clock)
    with store() as s, s.begin():
        assert again.provider(s, "corp.example") == "microsoft"
    assert len(dns_server.queries) == asked
    # once expired, it is looked up again and the new answer replaces the old one
    dns_server.clear()
    dns_server.add("corp.example", "MX", "10 mx01.mail.icloud.com.")
    clock.now = NOW + timedelta(days=8)
    later = ProviderResolver(ProvidersConfig(), DnsConfig(nameservers=(dns_server.address,), timeout=2), clock)
    with store() as s, s.begin():
        assert later.provider(s, "corp.example") == "apple"
    assert ("corp.example", "MX") in dns_server.queries


def test_configured_mappings_come_first_and_lookups_can_be_off(store, dns_server):
    dns_server.add("partner.example", "MX", "10 mx.partner-hosting.example.")
    config = ProvidersConfig(domains=("gmail.com=mygoogle", "intra.example=microsoft"),
                             mx_hosts=("partner-hosting.example=gmx",))
    resolver = ProviderResolver(config, DnsConfig(nameservers=(dns_server.address,), timeout=2))
    with store() as s, s.begin():
        assert resolver.resolve_many(s, ["gmail.com", "intra.example", "partner.example"]) == \
            {"gmail.com": "mygoogle", "intra.example": "microsoft", "partner.example": "gmx"}
    off = ProviderResolver(ProvidersConfig(mx_lookups=False), DnsConfig(nameservers=(dns_server.address,)))
    dns_server.clear()
    with store() as s, s.begin():
        assert off.provider(s, "elsewhere.example") == "other"
    assert dns_server.queries == []


def test_a_bad_mapping_is_a_sentence():
    with pytest.raises(ValueError, match="NAME=PROVIDER"):
        ProviderResolver(ProvidersConfig(domains=("gmail.com",)))
