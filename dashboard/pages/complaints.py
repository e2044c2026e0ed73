"""Complaints: trend by campaign and by provider, feedback types, complaint rate per campaign."""
from __future__ import annotations

from dash import Input, Output, html

from analysis.evidence import complaint_base
from dashboard import charts, data
from dashboard import components as ui
from dashboard.filters import label
from dashboard.pages.overview import COMPLAINT_LINES

NAME, PATH, TITLE = "complaints", "/complaints", "Complaints"


def layout(f, ctx, search=None):
    return [html.Div(id="co-notes"),
            ui.grid(ui.graph("co-campaign"), ui.graph("co-provider"), ui.graph("co-types"), ui.graph("co-rate")),
            ui.section("Complaint rate per campaign", html.Div(id="co-table"))]


def campaign_rates(frame) -> list[dict]:
    if frame.empty:
        return []
    rows = []
    for key, row in frame.iterrows():
        sent, complaints = int(row.get("sent", 0)), int(row.get("complaints", 0))
        if not sent and not complaints:
            continue
        base = int(complaint_base(sent, int(row.get("sent.fbl", 0)))[0])
        rows.append({"campaign": label(key), "sent": sent, "complaints": complaints,
                     "complaint_rate": data.ratio(complaints, base)})
    return sorted(rows, key=lambda r: (-(r["complaint_rate"] or 0), -r["complaints"]))


def update(ctx, search):
    f = ctx.filters(search)
    with ctx.sessions() as session:
        frame = data.daily(session, f)
        by_campaign = data.daily_by_key(session, "campaign", "complaints", f.start, f.end)
        by_provider = data.daily_by_key(session, "provider", "complaints", f.start, f.end)
        totals = data.by_key(session, "campaign", f.start, f.end, ("sent", "sent.fbl", "complaints"))
    types = data.prefixed(frame, "complaints.")
    rates = campaign_rates(totals)
    top = [r for r in rates if r["sent"]][:15]
    rate_fig = charts.with_lines(charts.bars([r["campaign"] for r in top], [r["complaint_rate"] for r in top],
                                             "Complaint rate per campaign", percent=True), COMPLAINT_LINES) \
        if top else charts.empty("Complaint rate per campaign")
    shown = [{**r, "complaint_rate": ui.pct(r["complaint_rate"], 3)} for r in rates]
    table = ui.table("co-rate-table", shown, ["campaign", "sent", "complaints", "complaint_rate"]) \
        if shown else html.P("No complaints in this range.")
    return (ui.ignored_note(f.ignored(), f.entity()),
            charts.stacked(by_campaign, "Complaints per day by campaign (all mail)"),
            charts.stacked(by_provider, "Complaints per day by provider (all mail)"),
            charts.stacked(types, "Complaints per day by feedback type"), rate_fig, table)


def register(app, ctx):
    @app.callback(Output("co-notes", "children"), Output("co-campaign", "figure"), Output("co-provider", "figure"),
                  Output("co-types", "figure"), Output("co-rate", "figure"), Output("co-table", "children"),
                  Input("url", "search"))
    def _update(search):
        return update(ctx, search)
