"""One provider vocabulary (ingest/providers.toml): what the classifier stores on a bounce is a
key the analysis knows and counts under."""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import select

from analysis import rollups
from analysis.dns import DnsConfig
from analysis.providers import (OTHER, PROVIDERS, ProviderResolver, ProvidersConfig, provider_for_domain,
                                provider_for_host, provider_for_org)
from ingest.bounce.classify import classify
from ingest.bounce.rules import load_rules
from ingest.envelope import Envelope
from ingest.providers import providers, renamed
from store.models import BounceEvent
from store.rollups import Rollup
from tests.analysis import history_a as h
from tests.ingest.messages import postfix_dsn

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
DAY = date(2026, 11, 3)


def _values(session) -> dict[tuple, int]:
    return {(r.day, r.dimension, r.key, r.metric): r.value for r in session.scalars(select(Rollup)) if r.value}


def test_every_name_the_classifier_can_store_is_a_provider_the_analysis_knows():
    rules = load_rules()
    assert set(rules.providers) == set(providers())
    assert set(PROVIDERS) == {*providers(), OTHER}
    scoped = set().union(*(rule.provider for rule in rules.rules if rule.provider))
    assert scoped <= set(PROVIDERS), "a shipped rule is scoped to a provider the analysis does not know"
    assert "aol" not in PROVIDERS and renamed() == {"aol": "yahoo"}


def test_no_domain_host_or_word_is_listed_twice():
    for field in ("domains", "hosts", "org_words"):
        listed = [v for p in providers().values() for v in getattr(p, field)]
        assert len(listed) == len(set(listed)), f"{field}: {sorted(v for v in listed if listed.count(v) > 1)}"


def test_the_classifier_and_the_analysis_name_every_domain_host_and_word_alike():
    rules = load_rules()
    for p in providers().values():
        for domain in p.domains:
            assert classify({"recipient": f"someone@{domain}", "diagnostic": "550 5.1.1 no such user"},
                            rules=rules)["provider"] == p.name
            assert provider_for_domain(domain) == p.name
        for host in p.hosts:
            event = {"recipient": "someone@corp.example", "remote_mta": f"dns; mx1.{host}",
                     "diagnostic": "550 5.1.1 no such user"}
            assert classify(event, rules=rules)["provider"] == p.name
            assert provider_for_host(f"mx1.{host}") == p.name
        for word in p.org_words:
            assert provider_for_org(f"The {word} postmaster") == p.name


def test_the_rollups_count_every_provider_under_its_own_name(store, dns_server):
    """A consumer domain by the list, a custom domain by its MX: each name is a rollup key."""
    expected = {}
    with store() as s, s.begin():
        for p in providers().values():
            if p.domains:
                domain = p.domains[0]
            else:  # a hosting or filtering service: known by the MX of its customers' domains
                domain = f"{p.name}-customer.example"
                dns_server.add(domain, "MX", f"10 mx1.{p.hosts[0]}.")
            h.bounce(s, DAY, "blocked", recipient=f"someone@{domain}")
            expected[p.name] = 1
        resolver = ProviderResolver(ProvidersConfig(), DnsConfig(nameservers=(dns_server.address,), timeout=2))
        rollups.update(s, now=NOW, providers=resolver)
    with store() as s:
        counted = {key: n for (day, dim, key, metric), n in _values(s).items()
                   if dim == "provider" and metric == "bounced"}
    assert counted == expected


def test_an_aol_bounce_is_stored_as_yahoo_and_counted_under_yahoo(store, pipeline):
    raw = postfix_dsn(recipients=[("gone@aol.com", "5.1.1", "550 5.1.1 <gone@aol.com>: Recipient address rejected: "
                                                            "This user doesn't have a aol.com account")])
    out = pipeline.ingest(raw, Envelope("file", "aol.eml", "", ("bounces@example.com",)))
    assert (out.kind, out.events) == ("bounce", 1)
    with store() as s:
        event = s.scalars(select(BounceEvent)).one()
        assert (event.recipient_domain, event.provider, event.reason) == ("aol.com", "yahoo", "userunknown")
        assert event.rule.startswith("rules.toml:userunknown@yahoo")  # Yahoo Inc.'s wording, scoped to yahoo
        day = event.occurred_at.date()
    with store() as s, s.begin():
        rollups.update(s, now=NOW, providers=ProviderResolver(ProvidersConfig(mx_lookups=False)))
    with store() as s:
        values = _values(s)
    assert values[(day, "provider", "yahoo", "bounced")] == 1
    assert values[(day, "provider", "yahoo", "reason.userunknown")] == 1
    assert not [k for k in values if k[1] == "provider" and k[2] != "yahoo"]
