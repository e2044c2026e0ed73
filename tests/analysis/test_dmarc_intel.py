"""DMARC intelligence: source classes, new sources, and the impact of p=quarantine/reject."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from analysis import rollups
from analysis.dmarc_intel import Classifier, DmarcConfig, impact, new_sources, sources, update_sources
from tests.analysis import history_a as h

D = date(2026, 5, 4)
NOW = datetime(2026, 5, 5, tzinfo=timezone.utc)
CONFIG = DmarcConfig(authorised_ips=("192.0.2.0/28",), esp_domains=("sendgrid.net",))


def test_classification_rules_in_order():
    c = Classifier(CONFIG, sending_ips=("2001:db8::25",))
    assert c("192.0.2.7", None, None, False, False) == ("authorised", "configured_ip")
    assert c("2001:db8::25", None, None, False, False) == ("authorised", "configured_ip")
    assert c("198.51.100.1", "sendgrid.net", "o1.ptr.sendgrid.net", False, True) == ("authorised", "esp_domain")
    assert c("198.51.100.2", None, None, False, True, [{"type": "forwarded", "comment": ""}]) == \
        ("forwarder", "override_reason")
    assert c("198.51.100.3", None, None, False, False, [{"type": "mailing_list"}]) == ("forwarder", "override_reason")
    assert c("198.51.100.4", None, None, True, False) == ("authorised", "spf_aligned")
    assert c("209.85.220.41", "google.com", "mail-sor-f41.google.com", False, True) == ("forwarder", "known_forwarder")
    assert c("198.51.100.5", None, None, False, True) == ("authorised", "dkim_aligned")
    assert c("203.0.113.66", "badhost.example", None, False, False) == ("unknown", "no_match")
    assert Classifier(DmarcConfig(forwarders=("lists.example.org",)))(
        "198.51.100.9", None, "mx.lists.example.org", False, False) == ("forwarder", "known_forwarder")


def _reports(s):
    h.dmarc_report(s, D - timedelta(days=20), "news.example.com", [
        {"ip": "192.0.2.5", "count": 900, "dkim": True, "spf": True},
        {"ip": "198.51.100.4", "count": 100, "spf": True},
    ], policy="none")
    h.dmarc_report(s, D, "news.example.com", [
        {"ip": "192.0.2.5", "count": 880, "dkim": True, "spf": True},
        {"ip": "192.0.2.6", "count": 20},  # ours (configured), but not signing: fails
        {"ip": "209.85.220.41", "count": 60, "rdns": "mail-sor-f41.google.com", "base": "google.com",
         "dkim": True},
        {"ip": "209.85.220.42", "count": 40, "rdns": "mail-sor-f42.google.com", "base": "google.com"},  # forwarded, broken
        {"ip": "203.0.113.66", "count": 500},  # spoofing
    ], policy="none")


def test_sources_are_kept_per_domain_with_first_seen_and_class(store):
    with store() as s, s.begin():
        _reports(s)
        assert update_sources(s, now=NOW, classifier=Classifier(CONFIG)) == 6
        assert update_sources(s, now=NOW, classifier=Classifier(CONFIG)) == 0  # idempotent
    with store() as s:
        got = {x.source_ip: x for x in sources(s, "News.Example.com")}
        assert got["192.0.2.5"].messages == 1780 and got["192.0.2.5"].first_seen == D - timedelta(days=20)
        assert got["192.0.2.5"].last_seen == D
        assert (got["192.0.2.6"].source_class, got["192.0.2.6"].classified_by) == ("authorised", "configured_ip")
        assert got["209.85.220.41"].source_class == "forwarder"
        assert got["203.0.113.66"].source_class == "unknown"
        assert got["198.51.100.4"].classified_by == "spf_aligned"
        new = {x.source_ip for x in new_sources(s, D - timedelta(days=7))}
        assert new == {"192.0.2.6", "209.85.220.41", "209.85.220.42", "203.0.113.66"}
        failing = {x.source_ip for x in new_sources(s, D - timedelta(days=7), failing_only=True)}
        assert failing == {"192.0.2.6", "209.85.220.42", "203.0.113.66"}
        assert sources(s, "news.example.com", since=D)[0].source_ip == "192.0.2.5"
        assert len(sources(s, "news.example.com", since=D)) == 5


def test_a_source_classified_again_when_more_reports_arrive(store):
    with store() as s, s.begin():
        h.dmarc_report(s, D, "b.example", [{"ip": "198.51.100.77", "count": 10}])
        update_sources(s, now=NOW)
        assert sources(s, "b.example")[0].source_class == "unknown"
        h.dmarc_report(s, D, "b.example", [{"ip": "198.51.100.77", "count": 90, "spf": True}])
        update_sources(s, now=NOW)
        row = sources(s, "b.example")[0]
        assert (row.source_class, row.messages, row.spf_aligned) == ("authorised", 100, 90)


def test_impact_of_a_strict_policy_counts_only_legitimate_mail(store):
    with store() as s, s.begin():
        _reports(s)
        rollups.update(s, now=NOW, classifier=Classifier(CONFIG))
        result = impact(s, "news.example.com")
    # legitimate: 880 + 20 (authorised) + 60 + 40 (forwarders) = 1000; failing: 20 + 40; the 500 spoofed don't count
    assert result.day == D and result.legitimate == 1000 and result.would_fail == 60
    assert result.share_lost == 0.06 and result.current_policy == "none"
    assert result.by_class["unknown"] == {"messages": 500, "failing": 500}
    assert impact(s, "nothing.example").legitimate == 0


def test_the_dmarc_sources_command(store, database, monkeypatch, capsys):
    import json

    from postwatch.cli import main
    from store import clock

    with store() as s, s.begin():
        _reports(s)
    monkeypatch.setenv("POSTWATCH_DATABASE__URL", database.url)
    monkeypatch.setenv("POSTWATCH_DMARC__AUTHORISED_IPS", "192.0.2.0/28")
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    assert main(["rollups", "update"]) == 0
    capsys.readouterr()
    assert main(["dmarc", "sources", "news.example.com"]) == 0
    out = capsys.readouterr().out
    assert "203.0.113.66" in out and "unknown" in out and "NEW" in out
    assert "60 of 1000 legitimate messages fail DMARC (6.00%" in out
    assert main(["dmarc", "sources", "news.example.com", "--days", "7", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["impact"]["share_lost"] == 0.06 and len(data["sources"]) == 5
    assert {x["source_ip"]: x["class"] for x in data["sources"]}["192.0.2.6"] == "authorised"
