"""DMARC: compliance and disposition per day, sources by class with where they are, new
sources, DKIM selectors and SPF domains, and what p=reject would cost — all of the range."""
from __future__ import annotations

from dash import Input, Output, html

from dashboard import charts, data
from dashboard import components as ui
from dashboard.filters import label

NAME, PATH, TITLE = "dmarc", "/dmarc", "DMARC"


def layout(f, ctx, search=None):
    return [html.Div(id="dm-notes"),
            ui.grid(ui.graph("dm-compliance"), ui.graph("dm-disposition"), ui.graph("dm-classes"),
                    ui.section("Impact if p=reject", html.Div(id="dm-impact"))),
            ui.section("Sources", html.Div(id="dm-sources")),
            ui.grid(ui.section("New sources", html.Div(id="dm-new")),
                    ui.section("DKIM selectors", html.Div(id="dm-selectors")),
                    ui.section("SPF domains", html.Div(id="dm-spf")))]


def update(ctx, search):
    f = ctx.filters(search)
    new_days = getattr(getattr(ctx.settings, "dmarc", None), "new_source_days", 7)
    with ctx.sessions() as session:
        frame = data.daily(session, f)
        disposition = data.dispositions(session, f)
        sources = data.dmarc_sources(session, f)
        new = data.new_dmarc_sources(session, f, new_days)
        selectors, spf = data.selectors_and_spf(session, f)
        from analysis.dmarc_intel import impact
        # the latest day with reports within the range
        impacts = [i for i in (impact(session, d, until=f.end) for d in data.dmarc_domains(session, f)[:10])
                   if i.day is not None and i.day >= f.start]
    dm = data.col(frame, "dmarc.messages")
    compliance = (data.col(frame, "dmarc.pass") / dm.where(dm > 0)).to_frame("DMARC pass")
    compliance["DKIM aligned"] = data.col(frame, "dmarc.aligned") / dm.where(dm > 0)
    compliance_fig = charts.lines(compliance, "DMARC compliance per day", percent=True) if dm.sum() \
        else charts.empty("DMARC compliance per day")
    impact_rows = [{"domain": label(i.domain), "day": i.day.isoformat() if i.day else "—",
                    "policy now": i.current_policy or "—", "legitimate": i.legitimate, "would fail": i.would_fail,
                    "share lost": ui.pct(i.share_lost), "unknown sources": i.by_class["unknown"]["messages"]}
                   for i in impacts]
    classes = data.prefixed(frame, "dmarc.source.")
    return (ui.ignored_note([n for n in f.ignored() if n != "domain"], f.entity()),
            compliance_fig, charts.stacked(disposition, "Messages per day by disposition"),
            charts.stacked(classes, "Messages per day by source class"),
            ui.table("dm-impact-table", impact_rows) if impact_rows else html.P("No DMARC reports in this range."),
            ui.table("dm-sources-table", sources, page_size=15) if sources else html.P("No sources in this range."),
            ui.table("dm-new-table", new, page_size=10) if new else html.P(f"No source first seen in the last {new_days} days."),
            ui.table("dm-selectors-table", selectors, page_size=10) if selectors else html.P("No DKIM results."),
            ui.table("dm-spf-table", spf, page_size=10) if spf else html.P("No SPF results."))


def register(app, ctx):
    @app.callback(Output("dm-notes", "children"), Output("dm-compliance", "figure"), Output("dm-disposition", "figure"),
                  Output("dm-classes", "figure"), Output("dm-impact", "children"), Output("dm-sources", "children"),
                  Output("dm-new", "children"), Output("dm-selectors", "children"), Output("dm-spf", "children"),
                  Input("url", "search"))
    def _update(search):
        return update(ctx, search)
