"""Blocklist checks against zones served by the loopback DNS server."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from analysis.blocklists import blocklists_job, check, listed, query_name
from analysis.dns import DnsConfig, make_resolver
from analysis.jobs import JobContext
from analysis.config import BlocklistsConfig, DomainsConfig
from postwatch.config import Config
from store.alerts import Alert
from store.checks import BlocklistCheck
from store.rollups import Rollup

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
V6 = "2001:db8::5"
V6_NAME = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"


def test_query_names():
    assert query_name("sending_ip", "192.0.2.10", "zen.test") == "10.2.0.192.zen.test"
    assert query_name("sending_ip", V6, "v6.test.") == f"{V6_NAME}.v6.test"
    assert query_name("sending_domain", "News.Example.", "dbl.test") == "news.example.dbl.test"


def _ctx(store, dns_server, now=NOW, **sections):
    cfg = Config(dns=DnsConfig(nameservers=(dns_server.address,), timeout=2.0),
                 domains=sections.pop("domains", DomainsConfig(sending_ips=("192.0.2.10", "192.0.2.11", V6),
                                                               sending_domains=("bad.example", "good.example"))),
                 blocklists=sections.pop("blocklists", BlocklistsConfig(
                     ip_zones=("zen.test", "refusing.test"), domain_zones=("dbl.test",))))
    return JobContext(sessions=store, settings=cfg, clock=lambda: now)


def _zones(dns_server):
    dns_server.add("10.2.0.192.zen.test", "A", "127.0.0.2")
    dns_server.add("10.2.0.192.zen.test", "TXT", '"Listed: see https://check.example/192.0.2.10"')
    dns_server.add(f"{V6_NAME}.zen.test", "A", "127.0.0.3")
    dns_server.add("bad.example.dbl.test", "A", "127.0.1.2")
    for ip in ("10.2.0.192", "11.2.0.192", V6_NAME):  # a zone refusing our resolver answers 127.255.255.254
        dns_server.add(f"{ip}.refusing.test", "A", "127.255.255.254")
    dns_server.add("zen.test", "SOA", "ns.zen.test. hostmaster.zen.test. 1 3600 600 86400 60")


def _rows(store):
    with store() as s:
        return {(r.key, r.zone): r for r in s.scalars(select(BlocklistCheck))}


def test_listings_clean_and_refusals_are_told_apart(store, dns_server):
    _zones(dns_server)
    written = blocklists_job(_ctx(store, dns_server))
    rows = _rows(store)
    assert written == len(rows) == 3 * 2 + 2 * 1
    assert {k: r.status for k, r in rows.items()} == {
        ("192.0.2.10", "zen.test"): "listed", ("192.0.2.11", "zen.test"): "clean", (V6, "zen.test"): "listed",
        ("192.0.2.10", "refusing.test"): "error", ("192.0.2.11", "refusing.test"): "error",
        (V6, "refusing.test"): "error",
        ("bad.example", "dbl.test"): "listed", ("good.example", "dbl.test"): "clean"}
    hit = rows[("192.0.2.10", "zen.test")]
    assert hit.answer.startswith("127.0.0.2") and "check.example/192.0.2.10" in hit.answer
    refused = rows[("192.0.2.11", "refusing.test")]
    assert not refused.listed and "refused" in refused.error and "127.255.255.254" in refused.error
    with store() as s:
        assert listed(s, NOW.date()) == {("sending_ip", "192.0.2.10"): ["zen.test"], ("sending_ip", V6): ["zen.test"],
                                         ("sending_domain", "bad.example"): ["dbl.test"]}
        alerts = {(a.dimension, a.key): a for a in s.scalars(select(Alert))}
    assert set(alerts) == {("sending_ip", "192.0.2.10"), ("sending_ip", V6), ("sending_domain", "bad.example")}
    assert all(a.rule == "blocklist" and a.severity == "critical" for a in alerts.values())
    assert "zen.test (127.0.0.2" in alerts[("sending_ip", "192.0.2.10")].message


def test_hourly_rechecks_update_the_day_and_a_delisting_resolves(store, dns_server):
    _zones(dns_server)
    ctx = _ctx(store, dns_server)
    blocklists_job(ctx)
    assert blocklists_job(ctx) == 0  # same answers: nothing new
    assert _rows(store)[("192.0.2.10", "zen.test")].checks == 2

    dns_server.clear()  # delisted everywhere
    later = NOW + timedelta(hours=1)
    assert blocklists_job(_ctx(store, dns_server, now=later)) == 6  # each listing or refusal changed
    row = _rows(store)[("192.0.2.10", "zen.test")]
    assert (row.status, row.listed) == ("clean", True)  # the day keeps that it was listed
    with store() as s:
        assert ("sending_ip", "192.0.2.10") in listed(s, NOW.date())
        assert s.scalars(select(Alert).where(Alert.status == "open")).all() == []
        assert listed(s, (NOW + timedelta(days=1)).date()) == {}


def test_targets_come_from_the_rollups_too(store, dns_server):
    dns_server.add("1.100.51.198.zen.test", "A", "127.0.0.4")
    with store.begin() as s:
        for dim, key in (("sending_ip", "198.51.100.1"), ("sending_ip", ""), ("sending_domain", "seen.example"),
                         ("provider", "google")):
            s.add(Rollup(day=NOW.date() - timedelta(days=1), dimension=dim, key=key, metric="sent", value=5))
    blocklists_job(_ctx(store, dns_server, domains=DomainsConfig()))
    assert {(k, z): r.status for (k, z), r in _rows(store).items()} == {
        ("198.51.100.1", "zen.test"): "listed", ("198.51.100.1", "refusing.test"): "clean",
        ("seen.example", "dbl.test"): "clean"}


def test_an_unreachable_server_is_an_error_not_a_listing():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))  # bound, never answered: the look-up times out
    try:
        resolver = make_resolver(DnsConfig(nameservers=(f"127.0.0.1:{s.getsockname()[1]}",), timeout=0.3))
        verdict = check(resolver, "sending_ip", "192.0.2.10", "zen.test")
    finally:
        s.close()
    assert verdict.status == "error" and "timeout" in verdict.error


def test_nothing_configured_checks_nothing(store, dns_server):
    assert blocklists_job(_ctx(store, dns_server, domains=DomainsConfig())) == 0
    assert dns_server.queries == []
