"""Imported volume: every bad row reported with its line, nothing half-imported, a re-import replaces."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select

from analysis.providers import ProviderResolver, ProvidersConfig
from analysis.volume import VolumeError, import_csv
from store.volume import VolumeImport

NOW = datetime(2026, 5, 3, tzinfo=timezone.utc)
HEADER = "day,sending_domain,sending_ip,provider,campaign,sent\n"
RESOLVER = ProviderResolver(ProvidersConfig(mx_lookups=False))


def _rows(store):
    with store() as s:
        return {(r.day, r.sending_domain, r.sending_ip, r.provider, r.campaign): r.sent
                for r in s.scalars(select(VolumeImport))}


def test_rows_are_mapped_and_summed_per_key(store):
    text = HEADER + ("2026-05-01,News.Example.com,192.0.2.10,gmail.com,spring,1000\n"
                     "2026-05-01,news.example.com,192.0.2.10,googlemail.com,spring,200\n"  # same provider: added up
                     "2026-05-01,news.example.com,,outlook.com,,50\n"
                     "\n"
                     "2026-05-02,news.example.com,2001:DB8::1,yahoo,,7\n")
    with store() as s, s.begin():
        result = import_csv(s, text, providers=RESOLVER, now=NOW, source="x.csv")
    assert result.errors == [] and (result.rows, result.keys, result.added, result.total_sent) == (4, 3, 3, 1257)
    assert _rows(store) == {
        (date(2026, 5, 1), "news.example.com", "192.0.2.10", "google", "spring"): 1200,
        (date(2026, 5, 1), "news.example.com", "", "microsoft", ""): 50,
        (date(2026, 5, 2), "news.example.com", "2001:db8::1", "yahoo", ""): 7,
    }


def test_every_error_with_its_line_and_nothing_imported(store):
    text = HEADER + ("2026-05-01,news.example.com,192.0.2.10,gmail.com,,10\n"
                     "2026-13-01,news.example.com,192.0.2.10,gmail.com,,10\n"
                     "2026-05-01,news.example.com,999.0.0.1,gmail.com,,ten\n"
                     "2026-05-01,news.example.com,192.0.2.10\n"
                     "2026-05-01,not a domain,,gmail.com,,-3\n")
    with store() as s, s.begin():
        result = import_csv(s, text, providers=RESOLVER, now=NOW)
    assert result.errors == [
        "line 3: day '2026-13-01' is not a date (YYYY-MM-DD)",
        "line 4: sending_ip '999.0.0.1' is not an IP address",
        "line 4: sent 'ten' is not a whole number >= 0",
        "line 5: 3 fields, expected 6",
        "line 6: sending_domain 'not a domain' is not a domain name",
        "line 6: sent '-3' is not a whole number >= 0",
    ]
    assert _rows(store) == {}


def test_a_header_that_is_not_ours_is_refused():
    with pytest.raises(VolumeError, match="missing column.*sent"):
        import_csv(None, "day,domain,ip,provider,campaign\n", providers=RESOLVER, now=NOW)
    with pytest.raises(VolumeError, match="empty"):
        import_csv(None, "", providers=RESOLVER, now=NOW)


def test_the_command_imports_then_replaces(store, database, tmp_path, monkeypatch, capsys):
    from postwatch.cli import main

    monkeypatch.setenv("POSTWATCH_DATABASE__URL", database.url)
    monkeypatch.setenv("POSTWATCH_PROVIDERS__MX_LOOKUPS", "false")
    f = tmp_path / "volume.csv"
    f.write_text(HEADER + "2026-05-01,news.example.com,,gmail.com,,1000\n")
    assert main(["volume", "import", str(f)]) == 0
    assert "1 new, 0 replaced; 1000 sends" in capsys.readouterr().out
    f.write_text(HEADER + "2026-05-01,news.example.com,,gmail.com,,400\n")
    assert main(["volume", "import", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["replaced"] == 1
    assert list(_rows(store).values()) == [400]
    f.write_text(HEADER + "2026-05-01,news.example.com,,gmail.com,,x\n")
    assert main(["volume", "import", str(f)]) == 1
    err = capsys.readouterr().err
    assert "line 2: sent 'x'" in err and "nothing imported" in err
    assert main(["volume", "import", str(tmp_path / "missing.csv")]) == 2
    # and the rollups count the replaced figure once
    assert main(["rollups", "update"]) == 0
    capsys.readouterr()
    from analysis.rollups import metrics_frame

    with store() as s:
        assert metrics_frame(s, date(2026, 5, 1), date(2026, 5, 1), "all").loc[date(2026, 5, 1), "sent"] == 400


def test_a_count_kept_under_a_recipient_domain_is_rolled_under_that_domains_provider(store):
    """A webhook counts sends under the recipient's domain when the shipped list does not name
    its provider; the rollups resolve it as they resolve an event's recipient domain, so the
    volume and the bounces of one provider meet under one name."""
    from analysis.rollups import update
    from store.rollups import Rollup

    with store.begin() as s:
        s.add_all([VolumeImport(day=date(2026, 5, 2), sending_domain="mail.example.com", sending_ip="",
                                provider=provider, campaign="", origin="webhook:sendgrid", sent=n, rolled=0,
                                pending=True, imported_at=NOW, source="inbound message 1")
                   for provider, n in (("example.org", 5), ("google", 7))])
    resolver = ProviderResolver(ProvidersConfig(mx_lookups=False, domains=("example.org=acme",)))
    with store.begin() as s:
        update(s, now=NOW, providers=resolver)
    with store() as s:
        sent = {r.key: r.value for r in s.scalars(select(Rollup).where(Rollup.dimension == "provider",
                                                                      Rollup.metric == "sent"))}
        total = s.scalar(select(Rollup.value).where(Rollup.dimension == "all", Rollup.metric == "sent"))
    assert sent == {"acme": 5, "google": 7} and total == 12
