"""The Providers page: the providers' figures and postwatch's own, side by side, from a real
store, and the page reachable from the navigation of the app."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import flask

from analysis.provider_feeds import import_postmaster, import_snds
from store.rollups import Rollup

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "providers"
NOW = datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)
SEARCH = "?start=2026-12-01&end=2026-12-02"


def test_the_page_shows_both_numbers_per_day(store, database):
    from dashboard.app import DashContext, PAGES, route
    from dashboard.pages import providers
    from postwatch.config import Config

    with store.begin() as s:
        import_postmaster(s, str(EXAMPLES / "domain-stats.json"), now=NOW)
        import_postmaster(s, str(EXAMPLES / "compliance-status.json"), now=NOW, day=date(2026, 12, 2))
        import_snds(s, str(EXAMPLES / "snds-data.csv"), now=NOW)
        import_snds(s, str(EXAMPLES / "snds-ipstatus.csv"), now=NOW, day=date(2026, 12, 2))
        for metric, value in (("sent", 10000), ("complaints", 5)):
            s.add(Rollup(day=date(2026, 12, 1), dimension="sending_domain", key="example.com", metric=metric,
                         value=value))
        for metric, value in (("sent", 4000), ("bounced.reputation", 80)):
            s.add(Rollup(day=date(2026, 12, 2), dimension="sending_ip", key="192.0.2.11", metric=metric, value=value))
    ctx = DashContext(store, Config(database=database), lambda: NOW)
    fig, gmail, snds, compliance = providers.update(ctx, SEARCH)
    traces = {t["name"]: dict(zip(t["x"], t["y"])) for t in fig["data"]}
    assert traces["Gmail example.com"]["2026-12-01"] == 0.08
    assert traces["ours example.com"]["2026-12-01"] == 0.05
    rows = {r["day"]: r for r in gmail.data}
    assert rows["2026-12-01"]["gmail_spam_rate"].startswith("0.080") and rows["2026-12-01"]["our_complaint_rate"] == "0.050 %"
    assert rows["2026-12-02"]["gmail_spam_rate"].startswith("0.340")
    red = next(r for r in snds.data if r["day"] == "2026-12-02")
    assert (red["snds_colour"], red["our_block_rate"]) == ("RED", "2.00 %") and red["snds_blocked"].startswith("yes")
    states = {r["requirement"]: r["google_state"] for r in compliance.data}
    assert states["one click unsubscribe"] == "needs_work"
    assert providers in PAGES
    server = flask.Flask("test")
    with server.test_request_context("/providers"):
        _bar, page, _who = route(ctx, "/providers", SEARCH)
    assert "pv-gmail" in json.dumps(page.to_plotly_json(), default=str)
