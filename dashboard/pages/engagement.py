"""Engagement: open and click rates of tracked mail per day, campaign and provider, each as
human (the hits of privacy proxies and link scanners left out) and all (analysis/engagement.py)."""
from __future__ import annotations

import pandas as pd
from dash import Input, Output, html

from analysis.engagement import RATES, rates, regroup
from dashboard import charts, data
from dashboard import components as ui
from dashboard.filters import label
from store.volume import SendLog

NAME, PATH, TITLE = "engagement", "/engagement", "Engagement"
HITS = ("opens_human", "opens_all", "clicks_human", "clicks_all")
COLUMNS = ["sent", *RATES, *HITS]


def _where(f) -> list:
    return [data.matches(column, value) for value, column in ((f.domain, SendLog.sending_domain),
                                                              (f.provider, SendLog.provider),
                                                              (f.campaign, SendLog.campaign)) if value]


def layout(f, ctx, search=None):
    return [html.Div(id="en-notes"), ui.grid(ui.graph("en-opens"), ui.graph("en-clicks")),
            ui.section("By campaign", html.Div(id="en-campaigns")),
            ui.section("By provider", html.Div(id="en-providers"))]


def _row(key: str, value, r) -> dict:
    return {key: label(value), "sent": r.sent, **{name: ui.pct(r.rate(name), 1) for name in RATES},
            **{name: getattr(r, name) for name in HITS}}


def _daily(days: list, kind: str) -> pd.DataFrame:
    """The human and all `kind` (open, click) rates of each day."""
    return pd.DataFrame({who: [r.rate(f"{kind}_{who}") for r in days] for who in ("human", "all")},
                        index=[r.day for r in days])


def update(ctx, search):
    f = ctx.filters(search)
    with ctx.sessions() as session:
        cells = rates(session, f.start, f.end, where=_where(f))  # by day, campaign and provider: summed below
    days, campaigns, providers = (regroup(cells, (key,)) for key in ("day", "campaign", "provider"))
    if not days:
        note = ui.note("No tracked mail was sent in this range. Tracking is switched on per campaign: "
                       "postwatch send --track, or [tracking] campaigns (docs/tracking.md).")
        return note, charts.empty("Open rate per day"), charts.empty("Click rate per day"), None, None
    note = ui.note("Rates are shares of the messages sent that day (accepted by the receiver) with at least one "
                   "open or click; human leaves out Apple Mail Privacy Protection and Gmail proxy fetches and link "
                   "scanners. A day's rate grows for some days as its mail is read.")
    return (note, charts.lines(_daily(days, "open"), "Open rate per day (by send day)", percent=True),
            charts.lines(_daily(days, "click"), "Click rate per day (by send day)", percent=True),
            ui.table("en-campaign-table", [_row("campaign", r.campaign, r) for r in campaigns], ["campaign"] + COLUMNS),
            ui.table("en-provider-table", [_row("provider", r.provider, r) for r in providers], ["provider"] + COLUMNS))


def register(app, ctx):
    @app.callback(Output("en-notes", "children"), Output("en-opens", "figure"), Output("en-clicks", "figure"),
                  Output("en-campaigns", "children"), Output("en-providers", "children"), Input("url", "search"))
    def _update(search):
        return update(ctx, search)
