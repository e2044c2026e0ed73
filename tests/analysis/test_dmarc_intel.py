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


def _ninety_days(s):
    """One report a day for 90 days up to D: 100 messages a day from 192.0.2.5, and a public
    Google address (in parsedmarc's bundled IP database) sending on the last 3 days only."""
    for i in range(90):
        day = D - timedelta(days=i)
        records = [{"ip": "192.0.2.5", "count": 100, "dkim": True, "spf": True}]
        if i < 3:
            records.append({"ip": "8.8.8.8", "count": 10})
        h.dmarc_report(s, day, "w.example", records)


def test_window_sources_count_only_the_window(store):
    from analysis.dmarc_intel import window_sources

    with store() as s, s.begin():
        _ninety_days(s)
        update_sources(s, now=NOW)
    with store() as s:
        week = {x.source_ip: x for x in window_sources(s, D - timedelta(days=6), D, "W.example")}
        quarter = {x.source_ip: x for x in window_sources(s, D - timedelta(days=89), D, "w.example")}
        before = window_sources(s, D - timedelta(days=29), D - timedelta(days=3), "w.example")
        assert sources(s, "w.example")[0].messages == 9000  # the all-time total kept by update_sources
    assert week["192.0.2.5"].messages == 700 and quarter["192.0.2.5"].messages == 9000
    assert week["192.0.2.5"].pass_rate == 1.0 and week["8.8.8.8"].pass_rate == 0.0
    # the class and first seen are those of all its mail; last seen is the window's
    assert week["192.0.2.5"].first_seen == D - timedelta(days=89) and week["192.0.2.5"].last_seen == D
    assert week["192.0.2.5"].source_class == "authorised" and week["8.8.8.8"].source_class == "unknown"
    assert [x.source_ip for x in before] == ["192.0.2.5"] and before[0].last_seen == D - timedelta(days=3)


def test_the_dmarc_sources_days_are_a_window(store, database, monkeypatch, capsys):
    import json

    from postwatch.cli import main
    from store import clock

    with store() as s, s.begin():
        _ninety_days(s)
    monkeypatch.setenv("POSTWATCH_DATABASE__URL", database.url)
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)  # the day after D
    assert main(["rollups", "update"]) == 0
    capsys.readouterr()

    def counts(*args) -> dict:
        assert main(["dmarc", "sources", "w.example", "--json", *args]) == 0
        return {x["source_ip"]: x["messages"] for x in json.loads(capsys.readouterr().out)["sources"]}

    assert counts("--days", "7") == {"192.0.2.5": 600, "8.8.8.8": 30}  # up to today: D-5 .. D (+ today)
    assert counts("--days", "90") == {"192.0.2.5": 8900, "8.8.8.8": 30}
    assert counts("--days", "7", "--end", str(D)) == {"192.0.2.5": 700, "8.8.8.8": 30}
    assert counts("--days", "10", "--end", str(D - timedelta(days=3))) == {"192.0.2.5": 1000}
    assert main(["dmarc", "sources", "w.example", "--days", "7"]) == 0
    out = capsys.readouterr().out
    assert f"({D - timedelta(days=5)} to {NOW.date()}, 7 days)" in out and "     600  100.0%" in out
    assert main(["dmarc", "sources", "w.example", "--days", "2", "--end", str(D - timedelta(days=95))]) == 0
    assert "no DMARC reports name w.example" in capsys.readouterr().out


def test_the_dmarc_sources_command_says_where_a_source_is_offline(store, database, monkeypatch, capsys):
    import json

    from postwatch.cli import main
    from store import clock
    from tests.analysis.test_source_info import no_network

    with store() as s, s.begin():
        _ninety_days(s)
    monkeypatch.setenv("POSTWATCH_DATABASE__URL", database.url)
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    with no_network(monkeypatch):
        assert main(["dmarc", "sources", "w.example", "--days", "7", "--json"]) == 0
    got = {x["source_ip"]: x for x in json.loads(capsys.readouterr().out)["sources"]}
    assert (got["8.8.8.8"]["country"], got["8.8.8.8"]["asn"], got["8.8.8.8"]["as_name"]) == ("US", 15169, "Google LLC")
    assert got["8.8.8.8"]["service"].startswith("Google")
    assert got["192.0.2.5"]["country"] is None and got["192.0.2.5"]["asn"] is None  # a documentation address
