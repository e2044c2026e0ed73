"""Blocklist checks against zones served by the loopback DNS server."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from analysis.blocklists import blocklists_job, check, listed, query_name, run_checks
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


def _ctx(store, dns_server, now=NOW, timeout=2.0, **sections):
    cfg = Config(dns=DnsConfig(nameservers=(dns_server.address,), timeout=timeout),
                 domains=sections.pop("domains", DomainsConfig(sending_ips=("192.0.2.10", "192.0.2.11", V6),
                                                               sending_domains=("bad.example", "good.example"))),
                 blocklists=sections.pop("blocklists", BlocklistsConfig(
                     ip_zones=("zen.test", "refusing.test"), domain_zones=("dbl.test",))))
    return JobContext(sessions=store, settings=cfg, clock=lambda: now)


def _tested(dns_server, *ip_zones, domain_zones=()):
    """The zones list their test entries (RFC 5782: 127.0.0.2, the domain `test`)."""
    for zone in ip_zones:
        dns_server.add(f"2.0.0.127.{zone}", "A", "127.0.0.2")
    for zone in domain_zones:
        dns_server.add(f"test.{zone}", "A", "127.0.1.2")


def _zones(dns_server):
    _tested(dns_server, "zen.test", domain_zones=("dbl.test",))
    dns_server.add("10.2.0.192.zen.test", "A", "127.0.0.2")
    dns_server.add("10.2.0.192.zen.test", "TXT", '"Listed: see https://check.example/192.0.2.10"')
    dns_server.add(f"{V6_NAME}.zen.test", "A", "127.0.0.3")
    dns_server.add("bad.example.dbl.test", "A", "127.0.1.2")
    # a zone refusing our resolver answers 127.255.255.254 to everything, its test entry too
    for ip in ("2.0.0.127", "1.0.0.127", "10.2.0.192", "11.2.0.192", V6_NAME):
        dns_server.add(f"{ip}.refusing.test", "A", "127.255.255.254")
    dns_server.add("zen.test", "SOA", "ns.zen.test. hostmaster.zen.test. 1 3600 600 86400 60")


def _rows(store):
    with store() as s:
        return {(r.key, r.zone): r for r in s.scalars(select(BlocklistCheck))}


def _alerts(store, status="open"):
    with store() as s:
        return {(a.dimension, a.key): a for a in s.scalars(select(Alert).where(Alert.status == status))}


def test_listings_clean_and_refusals_are_told_apart(store, dns_server):
    _zones(dns_server)
    written = blocklists_job(_ctx(store, dns_server))
    rows = _rows(store)
    assert written == len(rows) == 3 * 2 + 2 * 1
    assert {k: r.status for k, r in rows.items()} == {
        ("192.0.2.10", "zen.test"): "listed", ("192.0.2.11", "zen.test"): "clean", (V6, "zen.test"): "listed",
        ("192.0.2.10", "refusing.test"): "unknown", ("192.0.2.11", "refusing.test"): "unknown",
        (V6, "refusing.test"): "unknown",
        ("bad.example", "dbl.test"): "listed", ("good.example", "dbl.test"): "clean"}
    hit = rows[("192.0.2.10", "zen.test")]
    assert hit.answer.startswith("127.0.0.2") and "check.example/192.0.2.10" in hit.answer
    refused = rows[("192.0.2.11", "refusing.test")]
    assert not refused.listed and refused.error == (
        "refusing.test refused the query (127.255.255.254: public/open resolver): "
        "ask through a resolver of your own ([dns] nameservers)")
    with store() as s:
        assert listed(s, NOW.date()) == {("sending_ip", "192.0.2.10"): ["zen.test"], ("sending_ip", V6): ["zen.test"],
                                         ("sending_domain", "bad.example"): ["dbl.test"]}
    alerts = _alerts(store)
    assert set(alerts) == {("sending_ip", "192.0.2.10"), ("sending_ip", V6), ("sending_domain", "bad.example")}
    assert all(a.rule == "blocklist" and a.severity == "critical" for a in alerts.values())
    assert "zen.test (127.0.0.2" in alerts[("sending_ip", "192.0.2.10")].message


def test_hourly_rechecks_update_the_day_and_a_delisting_resolves(store, dns_server):
    _zones(dns_server)
    ctx = _ctx(store, dns_server)
    blocklists_job(ctx)
    assert blocklists_job(ctx) == 0  # same answers: nothing new
    assert _rows(store)[("192.0.2.10", "zen.test")].checks == 2

    dns_server.clear()  # delisted everywhere; the refusing zone answers again
    _tested(dns_server, "zen.test", "refusing.test", domain_zones=("dbl.test",))
    later = NOW + timedelta(hours=1)
    assert blocklists_job(_ctx(store, dns_server, now=later)) == 6  # each listing or refusal changed
    row = _rows(store)[("192.0.2.10", "zen.test")]
    assert (row.status, row.listed) == ("clean", True)  # the day keeps that it was listed
    with store() as s:
        assert ("sending_ip", "192.0.2.10") in listed(s, NOW.date())
        assert listed(s, (NOW + timedelta(days=1)).date()) == {}
    assert _alerts(store) == {}


def test_targets_come_from_the_rollups_too(store, dns_server):
    _tested(dns_server, "zen.test", "refusing.test", domain_zones=("dbl.test",))
    dns_server.add("1.100.51.198.zen.test", "A", "127.0.0.4")
    with store.begin() as s:
        for dim, key in (("sending_ip", "198.51.100.1"), ("sending_ip", ""), ("sending_domain", "seen.example"),
                         ("provider", "google")):
            s.add(Rollup(day=NOW.date() - timedelta(days=1), dimension=dim, key=key, metric="sent", value=5))
    blocklists_job(_ctx(store, dns_server, domains=DomainsConfig()))
    assert {(k, z): r.status for (k, z), r in _rows(store).items()} == {
        ("198.51.100.1", "zen.test"): "listed", ("198.51.100.1", "refusing.test"): "clean",
        ("seen.example", "dbl.test"): "clean"}


def test_a_zone_that_lists_its_test_entry_and_not_the_target_says_clean_asking_its_test_once(store, dns_server):
    _tested(dns_server, "zen.test", domain_zones=("dbl.test",))
    blocklists_job(_ctx(store, dns_server, blocklists=BlocklistsConfig(ip_zones=("zen.test",),
                                                                      domain_zones=("dbl.test",))))
    assert {k: (r.status, r.error) for k, r in _rows(store).items()} == {
        ("192.0.2.10", "zen.test"): ("clean", None), ("192.0.2.11", "zen.test"): ("clean", None),
        (V6, "zen.test"): ("clean", None), ("bad.example", "dbl.test"): ("clean", None),
        ("good.example", "dbl.test"): ("clean", None)}
    asked = [q for q, _ in dns_server.queries]
    # the test entry (listed) and the entry no zone may list (RFC 5782), once each for the run
    assert asked.count("2.0.0.127.zen.test") == 1 and asked.count("1.0.0.127.zen.test") == 1
    assert asked.count("test.dbl.test") == 1 and asked.count("invalid.dbl.test") == 1
    assert "10.2.0.192.zen.test" in asked


def test_a_zone_without_its_test_entry_is_unknown_for_every_target(store, dns_server):
    _tested(dns_server, "zen.test")
    dns_server.add("10.2.0.192.dead.test", "A", "127.0.0.2")  # answers that cannot be trusted
    for ip in ("2.0.0.127", "1.0.0.127"):  # a zone that lists everything, 127.0.0.1 too
        dns_server.add(f"{ip}.wild.test", "A", "127.0.0.2")
    ctx = _ctx(store, dns_server, blocklists=BlocklistsConfig(ip_zones=("zen.test", "dead.test", "wild.test"),
                                                            domain_zones=("nx.test",)))
    blocklists_job(ctx)
    rows = _rows(store)
    assert {k: r.status for k, r in rows.items() if k[1] == "zen.test"} == {
        ("192.0.2.10", "zen.test"): "clean", ("192.0.2.11", "zen.test"): "clean", (V6, "zen.test"): "clean"}
    for (key, zone), r in rows.items():
        if zone == "dead.test":
            assert (r.status, r.listed, r.error) == (
                "unknown", False, "dead.test did not list its test entry 127.0.0.2 (2.0.0.127.dead.test): "
                                  "its answers cannot be trusted")
        elif zone == "wild.test":
            assert r.status == "unknown" and "lists 127.0.0.1" in r.error
        elif zone == "nx.test":
            assert r.status == "unknown" and "did not list its test entry test (test.nx.test)" in r.error
    asked = [q for q, _ in dns_server.queries]
    assert "10.2.0.192.dead.test" not in asked and "bad.example.nx.test" not in asked  # not asked about targets
    assert _alerts(store) == {}


def test_an_error_code_for_a_target_is_unknown_with_the_reason_never_listed(store, dns_server):
    _tested(dns_server, "zen.test", domain_zones=("multi.test",))
    dns_server.add("10.2.0.192.zen.test", "A", "127.255.255.255")
    dns_server.add("11.2.0.192.zen.test", "A", "127.255.255.252")
    dns_server.add("bad.example.multi.test", "A", "127.0.0.1")  # URIBL and SURBL: the query blocked
    dns_server.add("good.example.multi.test", "A", "198.51.100.80")  # a resolver rewriting NXDOMAIN
    blocklists_job(_ctx(store, dns_server, blocklists=BlocklistsConfig(ip_zones=("zen.test",),
                                                                      domain_zones=("multi.test",))))
    rows = _rows(store)
    assert {k: r.status for k, r in rows.items()} == {
        ("192.0.2.10", "zen.test"): "unknown", ("192.0.2.11", "zen.test"): "unknown", (V6, "zen.test"): "clean",
        ("bad.example", "multi.test"): "unknown", ("good.example", "multi.test"): "unknown"}
    assert "127.255.255.255: excessive number of queries" in rows[("192.0.2.10", "zen.test")].error
    assert "127.255.255.252: typing error in the zone name" in rows[("192.0.2.11", "zen.test")].error
    assert "127.0.0.1: query blocked" in rows[("bad.example", "multi.test")].error
    assert "outside 127.0.0.0/8" in rows[("good.example", "multi.test")].error
    assert rows[("192.0.2.10", "zen.test")].answer == "127.255.255.255" and not rows[("192.0.2.10", "zen.test")].listed
    with store() as s:
        assert listed(s, NOW.date()) == {}
    assert _alerts(store) == {}


def test_a_time_out_or_servfail_is_unknown(store, dns_server):
    _tested(dns_server, "zen.test", "slow.test")
    dns_server.fail("10.2.0.192.zen.test", "timeout")
    dns_server.fail("11.2.0.192.zen.test", "SERVFAIL")
    dns_server.fail("2.0.0.127.slow.test", "timeout")  # the zone's own test entry times out
    blocklists_job(_ctx(store, dns_server, timeout=0.4,
                        blocklists=BlocklistsConfig(ip_zones=("zen.test", "slow.test"), domain_zones=())))
    rows = _rows(store)
    assert {k: (r.status, r.error) for k, r in rows.items() if k[1] == "zen.test"} == {
        ("192.0.2.10", "zen.test"): ("unknown", "time-out asking zen.test"),
        ("192.0.2.11", "zen.test"): ("unknown", "SERVFAIL from the DNS server asking zen.test"),
        (V6, "zen.test"): ("clean", None)}
    assert {r.error for k, r in rows.items() if k[1] == "slow.test"} == {
        "time-out asking slow.test for its test entry 127.0.0.2"}


def test_an_unreachable_server_is_unknown_not_a_listing():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))  # bound, never answered: the look-up times out
    try:
        resolver = make_resolver(DnsConfig(nameservers=(f"127.0.0.1:{s.getsockname()[1]}",), timeout=0.3))
        verdict = check(resolver, "sending_ip", "192.0.2.10", "zen.test")
    finally:
        s.close()
    assert verdict.status == "unknown" and "time-out" in verdict.error


def test_unknown_neither_opens_nor_resolves_a_listing_alert(store, dns_server):
    cfg = BlocklistsConfig(ip_zones=("zen.test",), domain_zones=())
    _tested(dns_server, "zen.test")
    dns_server.add("10.2.0.192.zen.test", "A", "127.0.0.2")
    blocklists_job(_ctx(store, dns_server, blocklists=cfg))
    assert set(_alerts(store)) == {("sending_ip", "192.0.2.10")}

    dns_server.clear()  # the zone stops answering for its test entry: nothing is known now
    blocklists_job(_ctx(store, dns_server, now=NOW + timedelta(hours=1), blocklists=cfg))
    assert {k: r.status for k, r in _rows(store).items()} == {
        ("192.0.2.10", "zen.test"): "unknown", ("192.0.2.11", "zen.test"): "unknown", (V6, "zen.test"): "unknown"}
    assert set(_alerts(store)) == {("sending_ip", "192.0.2.10")}  # still open: not delisted as far as we know
    assert _alerts(store, "resolved") == {}

    _tested(dns_server, "zen.test")  # it answers again, and the IP is no longer listed
    blocklists_job(_ctx(store, dns_server, now=NOW + timedelta(hours=2), blocklists=cfg))
    assert _alerts(store) == {} and set(_alerts(store, "resolved")) == {("sending_ip", "192.0.2.10")}


def test_configured_test_entries(store, dns_server):
    dns_server.add("dbltest.com.dbl.test", "A", "127.0.1.2")  # Spamhaus DBL's documented test name
    dns_server.add("2.0.0.127.zen.test", "A", "127.0.0.2")
    dns_server.add("4.0.0.127.own.test", "A", "127.0.0.4")  # a zone documenting another test address
    cfg = BlocklistsConfig(ip_zones=("zen.test", "own.test"), domain_zones=("dbl.test",),
                           test_entries=("dbl.test=dbltest.com", "own.test=127.0.0.4"))
    blocklists_job(_ctx(store, dns_server, blocklists=cfg))
    assert {r.status for r in _rows(store).values()} == {"clean"}
    assert BlocklistsConfig().test_entries == ("dbl.spamhaus.org=dbltest.com", "multi.surbl.org=test.surbl.org")
    with pytest.raises(ValueError, match="is not ZONE=ENTRY"):
        BlocklistsConfig(test_entries=("dbl.spamhaus.org",))
    with pytest.raises(ValueError, match="must be an IP address"):
        BlocklistsConfig(test_entries=("zen.spamhaus.org=test",))


def test_the_day_keeps_one_row_per_target_and_zone_however_often_it_runs(store, dns_server):
    _zones(dns_server)
    for hour in range(3):
        blocklists_job(_ctx(store, dns_server, now=NOW + timedelta(minutes=10 * hour)))
    with store() as s:
        rows = s.scalars(select(BlocklistCheck)).all()
    assert len(rows) == 8 and {r.checks for r in rows} == {3}


def test_nothing_configured_checks_nothing(store, dns_server):
    assert blocklists_job(_ctx(store, dns_server, domains=DomainsConfig())) == 0
    assert dns_server.queries == []


def test_the_digest_shows_unknown_with_its_reason_never_clean(store, dns_server):
    from analysis.digest.figures import _blocklists
    from analysis.digest.schedule import Period

    _zones(dns_server)
    blocklists_job(_ctx(store, dns_server))
    with store() as s:
        table = _blocklists(s, Period("weekly", NOW.date() - timedelta(days=6), NOW.date()))
    assert table.title == "Blocklist listings and unknown results"
    assert table.columns == ("kind", "target", "zone", "state", "days", "last_day")
    day = NOW.date()
    reason = ("unknown: refusing.test refused the query (127.255.255.254: public/open resolver): "
              "ask through a resolver of your own ([dns] nameservers)")
    assert table.rows == [
        ("domain", "bad.example", "dbl.test", "listed", 1, day), ("ip", "192.0.2.10", "zen.test", "listed", 1, day),
        ("ip", V6, "zen.test", "listed", 1, day),
        ("ip", "192.0.2.10", "refusing.test", reason, 1, day), ("ip", "192.0.2.11", "refusing.test", reason, 1, day),
        ("ip", V6, "refusing.test", reason, 1, day)]


def test_the_demo_resolver_answers_the_test_entries(store):
    from postwatch.demo.runner import ListingResolver
    from postwatch.demo.scenario import LISTED_IP, SENDING_IPS, DOMAINS

    cfg = BlocklistsConfig()
    resolver = ListingResolver(cfg)
    pairs = [("sending_ip", ip) for ip in SENDING_IPS] + [("sending_domain", d) for d in DOMAINS]
    for listing, day in ((True, NOW), (False, NOW + timedelta(days=1))):
        resolver.listed = listing
        with store.begin() as s:
            run_checks(s, resolver, pairs, cfg.ip_zones, cfg.domain_zones, day, workers=1, entries=cfg.test_entries)
        with store() as s:
            statuses = {(r.key, r.zone): r.status for r in s.scalars(select(BlocklistCheck)
                                                                     .where(BlocklistCheck.day == day.date()))}
        assert statuses.pop((LISTED_IP, "bl.spamcop.net")) == ("listed" if listing else "clean")
        assert set(statuses.values()) == {"clean"}
