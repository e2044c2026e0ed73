"""The dashboard's callbacks, called as functions on a store with known content, and the
Dash app wired on a Flask server (layout, routing, one callback over HTTP)."""
from __future__ import annotations

import json
from datetime import date, timedelta

import flask
import pytest

from tests.dashboard.known_store import (BLOCK_DAY, DOMAIN, END, IPS, NOW, SEARCH, SPIKE_DAY, SPOOF_IP, START,
                                         VOLUME, fill)

DAYS = (END - START).days + 1


@pytest.fixture(scope="module")
def app(tmp_path_factory, database_factory):
    from dashboard.app import create_dash
    from postwatch.config import Config
    from store.engine import session_factory, upgrade

    folder = tmp_path_factory.mktemp("dash")
    settings = Config(database=database_factory(folder))
    upgrade(settings.database)
    sessions = session_factory(settings.database)
    fill(sessions)
    server = flask.Flask("test")
    server.secret_key = "test-secret"
    return create_dash(server, settings, clock=lambda: NOW, sessions=sessions)


@pytest.fixture(scope="module")
def ctx(app):
    return app.postwatch


def _text(component) -> str:
    return json.dumps(component, cls=__import__("plotly").utils.PlotlyJSONEncoder)


def _y(fig, name):
    return next(t["y"] for t in fig["data"] if t["name"] == name)


def _traces(fig) -> dict:
    """name -> {x: y} of a figure's traces."""
    return {t.get("name"): dict(zip(t["x"], t["y"])) for t in fig["data"]}


def _sums(fig) -> dict:
    return {name: sum(v for v in points.values() if v) for name, points in _traces(fig).items()}


# ---------------------------------------------------------------- filters and the app

def test_filters_round_trip_through_the_query_string():
    from dashboard.filters import Filters, parse

    f = parse("?start=2024-05-01&end=2024-05-30&provider=google&campaign=spring", date(2024, 6, 1))
    assert (f.start, f.end, f.provider, f.campaign, f.domain) == (START, END, "google", "spring", None)
    assert parse(f.query_string(), date(2024, 6, 1)) == f
    assert f.entity() == ("campaign", "spring") and f.ignored() == ["provider"]
    assert f.previous() == Filters(date(2024, 4, 1), date(2024, 4, 30), None, "google", "spring")
    default = parse("?start=bogus", date(2024, 6, 1))
    assert default.end == date(2024, 6, 1) and default.days == 30
    assert parse("?start=2024-05-30&end=2024-05-01", date(2024, 6, 1)).start == START


def test_filter_bar_writes_the_url_and_keeps_the_pages_own_parameters(ctx):
    from dashboard.app import filters_to_search

    search = filters_to_search(ctx, "2024-05-01", "2024-05-30", None, "microsoft", None, "?by=sending_ip&a=x&start=1")
    assert search.startswith("?start=2024-05-01&end=2024-05-30&provider=microsoft")
    assert "by=sending_ip" in search and "a=x" in search and search.count("start=") == 1


def test_the_layout_builds_and_every_page_routes(app, ctx):
    from dashboard.app import PAGES, route

    client = app.server.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/_dash-layout").status_code == 200
    assert client.get("/_dash-dependencies").status_code == 200
    for page in PAGES:
        bar, body, _who = route(ctx, page.PATH, SEARCH)
        text = _text(body)
        assert f"page-{page.NAME}" in text
        assert "2024-05-01" in _text(bar)
    _bar, missing, _ = route(ctx, "/nowhere", SEARCH)
    assert "There is no page at /nowhere" in _text(missing)


def test_the_filter_bar_arrives_with_its_choices(ctx):
    """The options callback fires on URL changes only: the routed bar must carry its choices."""
    from dashboard.app import route

    bar, _body, _who = route(ctx, "/", SEARCH)
    dropdowns = {c.id: c.options for c in bar.children if getattr(c, "id", "").startswith("f-") and
                 hasattr(c, "options")}
    assert _values(dropdowns["f-domain"]) == [DOMAIN]
    assert {"google", "microsoft"} <= set(_values(dropdowns["f-provider"]))


def _values(options) -> list:
    return [o["value"] for o in options]


def test_filter_options_come_from_the_rollups(ctx):
    from dashboard.app import filter_options

    domains, providers, campaigns = filter_options(ctx, SEARCH)
    assert _values(domains) == [DOMAIN]
    assert {"google", "microsoft"} <= set(_values(providers))
    assert _values(campaigns) == ["spring", "summer"]


def test_a_callback_answers_over_http(app):
    client = app.server.test_client()
    body = {"output": "bo-events.data", "outputs": {"id": "bo-events", "property": "data"},
            "inputs": [{"id": "url", "property": "search", "value": SEARCH},
                       {"id": "bo-events", "property": "page_current", "value": 0},
                       {"id": "bo-events", "property": "page_size", "value": 5}],
            "changedPropIds": ["url.search"], "state": []}
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.data[:500]
    rows = response.get_json()["response"]["bo-events"]["data"]
    assert len(rows) == 5 and rows[0]["reason"] == "blocked"


# ---------------------------------------------------------------- pages

def test_overview_figures_and_the_change_against_the_previous_period(ctx):
    from dashboard.pages import overview

    notes, cards, volume, rates, complaints, dmarc, sources, grades, alerts = overview.update(ctx, SEARCH)
    assert notes == []
    per_day = sum(VOLUME.values())
    assert sum(_y(volume, "sent")) == per_day * DAYS
    assert _sums(sources) == {"csv": per_day * DAYS}  # where the sends were counted: a volume import
    text = _text(cards)
    assert f"{per_day * DAYS:,}" in text and "no previous data" in text  # nothing before May
    assert "Open alerts" in text
    assert {round(s["y0"], 4) for s in complaints["layout"]["shapes"]} == {0.001, 0.003}
    # of the sends that could complain: Microsoft reports complaints, Gmail sends none
    fbl = sum(n for (provider, _ip, _c), n in VOLUME.items() if provider == "microsoft")
    assert _traces(complaints)["complaint rate"][SPIKE_DAY.isoformat()] == pytest.approx(6 / fbl)
    assert "google" in _text(grades) and "microsoft" in _text(grades)
    assert "Block spike at microsoft" in _text(alerts)
    assert _traces(dmarc)["DKIM aligned"]["2024-05-27"] == pytest.approx(1000 / 1100)


def test_changing_a_filter_changes_the_charts(ctx):
    from dashboard.pages import overview

    everything = overview.update(ctx, SEARCH)[2]
    microsoft = overview.update(ctx, SEARCH + "&provider=microsoft")[2]
    assert sum(_y(everything, "sent")) != sum(_y(microsoft, "sent"))
    assert sum(_y(microsoft, "sent")) == 500 * DAYS
    both = overview.update(ctx, SEARCH + "&provider=microsoft&campaign=spring")
    assert "the provider filter applies to the tables of events only" in _text(both[0])


def test_bounces_trends_diagnostics_and_the_paged_table(ctx):
    from dashboard.pages import bounces

    notes, category, reason, provider, deferred, diagnostics, page_count, count = bounces.update(ctx, SEARCH)
    assert _traces(deferred) == {}  # no delays in this store
    day = BLOCK_DAY.isoformat()
    assert {name: points[day] for name, points in _traces(category).items()} == {"reputation": 40, "hygiene": 10}
    assert set(_traces(reason)) == {"blocked", "userunknown"}
    assert _sums(provider) == {"microsoft": 40, "google": 10}
    assert "S3150" in _text(diagnostics) and page_count == 2 and count.startswith("50 events")
    first = bounces.page(ctx, SEARCH, 0)
    second = bounces.page(ctx, SEARCH, 1)
    assert len(first) == 25 and len(second) == 25
    assert first[0]["occurred_at"] >= first[-1]["occurred_at"] >= second[0]["occurred_at"]
    assert not {r["id"] for r in first} & {r["id"] for r in second}
    google = bounces.page(ctx, SEARCH + "&provider=google", 0)
    assert len(google) == 10 and {r["reason"] for r in google} == {"userunknown"}
    # each event on the IP that sent it; one whose IP nothing names says so
    assert {r["sending_ip"] for r in google} == {"unknown"}
    assert {r["sending_ip"] for r in bounces.page(ctx, SEARCH + "&provider=microsoft", 0)} == {"192.0.2.11"}
    raw = _text(bounces.raw(ctx, google, {"row": 0, "column": 0}))
    assert "Undelivered Mail Returned to Sender" in raw and "Final-Recipient: rfc822; gone0@gmail.com" in raw
    assert "Click an event" in _text(bounces.raw(ctx, google, None))


def test_complaints_by_campaign_provider_and_type(ctx):
    from dashboard.pages import complaints

    _notes, by_campaign, by_provider, types, rate, table = complaints.update(ctx, SEARCH)
    assert _sums(by_campaign) == {"summer": 6}
    assert _sums(by_provider) == {"microsoft": 6}
    assert set(_traces(types)) == {"abuse"}
    rates = dict(zip(rate["data"][0]["x"], rate["data"][0]["y"]))
    assert rates["summer"] == pytest.approx(6 / (500 * DAYS)) and rates["spring"] == 0
    assert "summer" in _text(table)


def test_dmarc_sources_classes_and_impact(ctx):
    from dashboard.pages import dmarc

    (_notes, compliance, disposition, classes, impact, sources, new, selectors, spf) = dmarc.update(ctx, SEARCH)
    assert {name: points["2024-05-27"] for name, points in _traces(disposition).items()} == {"none": 1000,
                                                                                              "reject": 100}
    assert _sums(classes) == {"authorised": 1000, "unknown": 100}
    text = _text(sources)
    assert SPOOF_IP in text and '"unknown"' in text and '"NL"' in text
    assert SPOOF_IP in _text(new)
    assert '"s1"' in _text(selectors) and "spoof.example" in _text(spf)
    assert '"none"' in _text(impact)


def test_tls_sessions_and_failures(ctx):
    from dashboard.pages import tls

    _notes, sessions, types, table = tls.update(ctx, SEARCH)
    assert _sums(sessions) == {"successful": 900, "failed": 7}
    assert types["data"][0]["y"] == ["certificate-expired"]
    assert "mx1.news.example.com" in _text(table)


def test_reputation_scores_explain_themselves(ctx):
    from dashboard.pages import reputation

    many, own, components, table = reputation.update(ctx, SEARCH + "&provider=microsoft")
    assert set(_traces(many)) >= {"google", "microsoft"}
    score = _traces(own)["score"]
    assert score[BLOCK_DAY.isoformat()] < score[(BLOCK_DAY - timedelta(days=1)).isoformat()]
    assert _traces(components)["blocks"][BLOCK_DAY.isoformat()] > 0
    by_ip = reputation.update(ctx, SEARCH, "sending_ip")[0]
    assert set(_traces(by_ip)) >= set(IPS)  # and the spoofing source, scored on its DMARC volume


def test_suppressions_find_remove_as_editor_only_and_export(ctx):
    from dashboard.pages import suppressions

    growth, count = suppressions.update(ctx, SEARCH)
    assert _sums(growth) == {"userunknown": 1, "complaint": 1}
    assert "2" in _text(count)
    found = _text(suppressions.find(ctx, "gone0@gmail.com"))
    assert "userunknown" in found and "bounce_events #1" in found
    assert "angry0@outlook.com" in _text(suppressions.find(ctx, "angry"))
    assert "is not suppressed" in _text(suppressions.find(ctx, "nobody@example.org"))
    refused = _text(suppressions.remove(ctx, "viewer", "angry0@outlook.com", "global", "asked"))
    assert "Only an editor" in refused
    assert "Say why" in _text(suppressions.remove(ctx, "editor", "angry0@outlook.com", "global", ""))
    assert "Removed angry0@outlook.com" in _text(suppressions.remove(ctx, "editor", "angry0@outlook.com", "global",
                                                                     "asked by support"))
    assert "is not suppressed" in _text(suppressions.find(ctx, "angry0@outlook.com"))
    csv = suppressions.export(ctx)
    assert csv["filename"].endswith(".csv") and "gone0@gmail.com" in csv["content"]
    assert "angry0@outlook.com" not in csv["content"]


def test_the_role_comes_from_the_signed_session(app):
    from dashboard.auth import current_role

    assert current_role() is None
    with app.server.test_request_context("/"):
        flask.session["role"] = "editor"
        assert current_role() == "editor"
        flask.session["role"] = "admin"
        assert current_role() is None


def test_compare_two_campaigns_from_the_rollups(ctx):
    from dashboard.pages import compare

    notes, fig, table = compare.update(ctx, SEARCH, "campaign", ["spring"], ["summer"])
    assert "from the rollups" in _text(notes)
    blocks = {name[:1]: points["block"] for name, points in _traces(fig).items()}
    assert blocks == {"A": 0, "B": pytest.approx(40 / (500 * DAYS))}
    assert fig["data"][1]["error_y"]["array"][2] > 0
    assert '"significant": "yes"' in _text(table) or "yes" in _text(table)
    assert "Pick the values" in _text(compare.update(ctx, SEARCH, "sending_ip", [], [IPS[1]])[0])
    assert compare.options(ctx, SEARCH, "campaign") == ["spring", "summer"]
    search = compare.to_search(ctx, SEARCH, "sending_ip", [IPS[0]], [IPS[1]])
    assert "by=sending_ip" in search and "start=2024-05-01" in search


def test_domains_checklist_and_posture(ctx):
    from dashboard.pages import domains

    checklist, posture = domains.update(ctx, SEARCH)
    row = checklist.data[0]
    assert row["domain"] == DOMAIN
    assert row["one-click unsubscribe"].endswith("no")  # no [web] secret: unsubscribe links are refused
    assert row["authenticated (SPF, DKIM, DMARC)"].endswith("no")  # DMARC is only a warning (p=none)
    assert row["complaints under 0.3 %"].startswith("\u2714 yes")
    assert "DMARC p=none" in _text(posture)


def test_alerts_and_jobs(ctx):
    from dashboard.pages import alerts

    open_, recent, jobs = alerts.update(ctx, SEARCH)
    assert "Block spike at microsoft" in _text(open_)
    rows = {r["job"]: r for r in jobs.data}
    assert rows["rollups"]["duration_s"] == 2.0 and rows["rollups"]["rows"] == 12
    assert rows["scores"]["last_run"] == "never"


# ---------------------------------------------------------------- issue 16: windows, charts, unknown keys

def test_dmarc_sources_follow_the_range_and_show_rates_as_percentages(ctx):
    from dashboard.pages import dmarc

    sources = dmarc.update(ctx, SEARCH)[5]
    rows = {r["source_ip"]: r for r in sources.data}
    assert rows[IPS[0]]["messages"] == 1000 and rows[SPOOF_IP]["messages"] == 100
    assert rows[IPS[0]]["pass_rate"] == "100.0 %" and rows[SPOOF_IP]["pass_rate"] == "0.0 %"
    assert rows[SPOOF_IP]["country"] == "NL"  # as the report's enrichment gave it
    # the only report is of 2024-05-27: a range that ends before it has no sources, no new ones
    before = dmarc.update(ctx, f"?start={START}&end=2024-05-26")
    assert "No sources in this range." in _text(before[5]) and "No source first seen" in _text(before[6])
    impact = dmarc.update(ctx, SEARCH)[4]
    assert impact.data[0]["share lost"] == "0.00 %"


def test_dmarc_sources_are_enriched_offline(store, monkeypatch):
    from dashboard import data
    from dashboard.filters import Filters
    from tests.analysis import history_a as h
    from tests.analysis.test_source_info import no_network

    with store() as session, session.begin():
        h.dmarc_report(session, date(2024, 5, 10), "enriched.example", [{"ip": "8.8.8.8", "count": 5}])
    with store() as session, no_network(monkeypatch):
        rows = data.dmarc_sources(session, Filters(START, END, domain="enriched.example"))
    assert len(rows) == 1 and rows[0]["class"] == "—"  # not folded by the dmarc_sources job yet
    assert (rows[0]["country"], rows[0]["asn"]) == ("US", "AS15169 Google LLC")
    assert rows[0]["service"].startswith("Google") and rows[0]["reverse_dns"] == ""


def test_todays_partial_day_is_drawn_apart_and_said_so(ctx):
    from dashboard.pages import overview

    today = NOW.date().isoformat()
    finished = overview.update(ctx, SEARCH)[2]  # the range ends yesterday: nothing partial
    assert not [t for t in finished["data"] if "partial" in t["name"]]
    _notes, _cards, volume, rates, complaints, _dmarc, _sources, _grades, _alerts = overview.update(
        ctx, f"?start={START}&end={today}")
    sent = next(t for t in volume["data"] if t["name"] == "sent")
    assert sent["x"][-2:] == [today, today] and sent["y"][-2] is None  # the line stops before today
    dotted = next(t for t in volume["data"] if t["name"] == "sent (partial day)")
    assert dotted["line"]["dash"] == "dot" and dotted["x"] == [END.isoformat(), today]
    legend = [t["name"] for t in volume["data"] if t.get("showlegend", True)]
    assert f"{today}: partial day, so far (dotted)" in legend
    assert any(t["name"].endswith("(partial day)") for t in rates["data"] + complaints["data"])


def test_the_hard_bounce_rate_has_its_own_axis(ctx):
    from dashboard.pages import overview

    rates = overview.update(ctx, SEARCH)[3]
    axes = {t["name"]: t.get("yaxis", "y") for t in rates["data"]}
    assert axes == {"delivery rate": "y", "hard-bounce rate (right axis)": "y2"}
    assert rates["layout"]["yaxis2"]["overlaying"] == "y" and rates["layout"]["yaxis2"]["side"] == "right"
    assert rates["layout"]["yaxis2"]["tickformat"].endswith("%")
    hard = _traces(rates)["hard-bounce rate (right axis)"][BLOCK_DAY.isoformat()]
    assert hard == pytest.approx(10 / sum(VOLUME.values()))


def test_component_losses_are_rounded_for_reading(ctx):
    from dashboard.pages import reputation

    # the table is of the range's last day: the day Microsoft blocked us
    _many, _own, components, table = reputation.update(ctx, f"?start={START}&end={BLOCK_DAY}&provider=microsoft")
    rows = {r["component"]: r for r in table[1].data}
    assert rows["blocks"]["lost"] != "0.0" and len(rows["blocks"]["lost"].split(".")[1]) == 1
    assert rows["complaints"]["weight"] == "40.0"
    lost = [v for t in components["data"] for v in t["y"] if v]
    assert lost and all(round(v, 1) == v for v in lost)


def test_the_bounce_caption_names_the_entity(ctx):
    from dashboard.pages import bounces

    assert bounces.update(ctx, SEARCH)[-1] == "50 events in the range (from the rollups of all mail)"
    assert bounces.update(ctx, SEARCH + "&provider=microsoft")[-1].endswith("(from the rollups of provider microsoft)")
    assert bounces.update(ctx, SEARCH + "&campaign=(unknown)")[-1] == \
        "0 events in the range (from the rollups of campaign unknown)"


@pytest.fixture(scope="module")
def empty_sessions(tmp_path_factory, database_factory):
    from store.engine import session_factory, upgrade

    database = database_factory(tmp_path_factory.mktemp("empty"))
    upgrade(database)
    return session_factory(database)


def test_the_domains_page_says_when_no_domain_is_configured(empty_sessions):
    from dashboard.app import DashContext
    from dashboard.pages import domains
    from ingest.config import DomainsConfig
    from postwatch.config import Config

    bare = DashContext(empty_sessions, Config(), lambda: NOW)
    assert "No sending domains are configured ([domains] sending_domains in postwatch.toml)." in \
        _text(domains.update(bare, SEARCH)[1])
    configured = DashContext(empty_sessions, Config(domains=DomainsConfig(sending_domains=("a.example",))),
                             lambda: NOW)
    assert "No posture check has run yet" in _text(domains.update(configured, SEARCH)[1])


def test_the_unattributed_key_is_shown_as_unknown(ctx):
    from dashboard import data
    from dashboard.app import filter_options
    from dashboard.filters import UNKNOWN, parse
    from dashboard.pages import compare

    # bounces and complaints that name no sending IP count under sending_ip ''
    found = compare.options(ctx, SEARCH, "sending_ip")
    assert found[0] == UNKNOWN and set(IPS) <= set(found)
    assert {"label": "unknown", "value": UNKNOWN} in compare.choices(found, [])
    notes, fig, _table = compare.update(ctx, SEARCH, "sending_ip", [UNKNOWN], [IPS[1]])
    assert [t["name"] for t in fig["data"]] == ["A: unknown", f"B: {IPS[1]}"]
    with ctx.sessions() as session:
        by_ip = data.daily_by_key(session, "sending_ip", "bounced", START, END)
    assert "unknown" in by_ip.columns and "" not in by_ip.columns
    # the filter bar keeps it as a choice, labelled, and the charts read the key ''
    campaigns = filter_options(ctx, SEARCH + f"&campaign={UNKNOWN}")[2]
    assert {"label": "unknown", "value": UNKNOWN} in campaigns and all(c["label"] for c in campaigns)
    assert parse(f"?campaign={UNKNOWN}", NOW.date()).entity() == ("campaign", "")
