"""Suppressions: growth by reason, find an address and see why it is suppressed, remove one
with a reason (editors only, checked on the server), export the list as CSV."""
from __future__ import annotations

import csv
import io

from dash import Input, Output, State, dcc, html

from analysis.sunset import count as sunset_count
from dashboard import charts, data
from dashboard import components as ui
from dashboard import filters as flt

NAME, PATH, TITLE = "suppressions", "/suppressions", "Suppressions"
COLUMNS = ["address", "scope", "reason", "source", "since", "expires", "evidence", "details"]


def layout(f, ctx, search=None):
    return [ui.grid(ui.graph("su-growth"), ui.section("In force", html.Div(id="su-count"))),
            ui.section("Find an address", html.Div([
                dcc.Input(id="su-query", type="text", placeholder="address, or part of one", debounce=True,
                          value=flt.param(search, "q") or "",
                          style={"width": "320px", "marginRight": "8px"}),
                html.Button("Find", id="su-find", n_clicks=0),
                html.Button("Export CSV", id="su-export", n_clicks=0, style={"marginLeft": "24px"}),
                dcc.Download(id="su-download")]),
                html.Div(id="su-results", style={"marginTop": "8px"})),
            ui.section("Remove a suppression (editors)", html.Div([
                dcc.Input(id="su-remove-address", type="text", placeholder="address", style={"width": "260px"}),
                dcc.Input(id="su-remove-scope", type="text", value="global", style={"width": "160px"}),
                dcc.Input(id="su-remove-reason", type="text", placeholder="why (required)", style={"width": "260px"}),
                html.Button("Remove", id="su-remove", n_clicks=0)], style={"display": "flex", "gap": "6px"}),
                html.Div(id="su-remove-result", style={"marginTop": "6px"}))]


def update(ctx, search):
    f = ctx.filters(search)
    with ctx.sessions() as session:
        growth = data.suppression_growth(session, f)
        count = data.active_count(session, ctx.clock())
        sunset = sunset_count(session, ctx.clock())
    return (charts.stacked(growth, "Suppressions added per day by reason"),
            html.Div([html.Div(f"{count:,}", style={"fontSize": "28px", "fontWeight": "bold"}),
                      html.Div("addresses and scopes suppressed now"),
                      html.Div([html.Span(f"{sunset:,}", id="su-sunset", style={"fontWeight": "bold"}),
                                " of them sunset: no human open or click in their last tracked messages "
                                "(scope sunset; remove one to mail it again)"], style={"marginTop": "8px"})]))


def _salt(ctx) -> str:
    return getattr(getattr(ctx.settings, "privacy", None), "salt", "") or ""


def find(ctx, text):
    """The suppressions in force that match `text`, with why each one was decided."""
    text = (text or "").strip()
    if not text:
        return html.P("Type an address (or part of one) and press Find.")
    with ctx.sessions() as session:
        rows = data.suppression_rows(data.find_suppressions(session, text, ctx.clock(), _salt(ctx)))
    if not rows:
        return html.P(f"{text} is not suppressed.", id="su-none")
    return ui.table("su-results-table", rows, COLUMNS, page_size=20)


def remove(ctx, role, address, scope, reason):
    """Lift a suppression: editors only; the reason goes into the change log and the feed."""
    from store.suppressions import ScopeError, remove_suppression
    from store.addresses import AddressError

    if role != "editor":
        return html.P("Only an editor can remove a suppression; your role is "
                      f"{role or 'not known'}.", style={"color": "#c53030"})
    if not (address or "").strip():
        return html.P("Give the address to remove.", style={"color": "#c53030"})
    if not (reason or "").strip():
        return html.P("Say why the suppression is removed: the reason is kept in the change log.",
                      style={"color": "#c53030"})
    try:
        with ctx.sessions.begin() as session:
            removed = remove_suppression(session, address.strip(), reason=reason, now=ctx.clock(),
                                         scope=(scope or "global").strip() or "global")
    except (AddressError, ScopeError, ValueError) as exc:
        return html.P(f"Nothing removed: {exc}.", style={"color": "#c53030"})
    if not removed:
        return html.P(f"{address.strip()} is not suppressed in scope {scope or 'global'}; nothing removed.")
    return html.P(f"Removed {address.strip()} from scope {scope or 'global'} ({len(removed)} row"
                  f"{'s' if len(removed) > 1 else ''}); the feed shows the removal.", style={"color": "#1b7f3b"})


def export(ctx, text=None):
    """Every suppression in force (or those matching `text`) as CSV."""
    from store.suppressions import active_suppressions

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n", extrasaction="ignore")
    writer.writeheader()
    with ctx.sessions() as session:
        query = active_suppressions(session, ctx.clock(), search=(text or "").strip() or None)
        for chunk in session.scalars(query.execution_options(yield_per=5000)).partitions():
            writer.writerows(data.suppression_rows(list(chunk)))
    return {"content": out.getvalue(), "filename": f"suppressions-{ctx.today().isoformat()}.csv",
            "type": "text/csv"}


def register(app, ctx):
    from dashboard.auth import current_role

    @app.callback(Output("su-growth", "figure"), Output("su-count", "children"), Input("url", "search"))
    def _update(search):
        return update(ctx, search)

    @app.callback(Output("su-results", "children"), Input("su-find", "n_clicks"), Input("su-query", "value"))
    def _find(_clicks, text):
        return find(ctx, text)

    @app.callback(Output("su-remove-result", "children"), Input("su-remove", "n_clicks"),
                  State("su-remove-address", "value"), State("su-remove-scope", "value"),
                  State("su-remove-reason", "value"), prevent_initial_call=True)
    def _remove(_clicks, address, scope, reason):
        return remove(ctx, current_role(), address, scope, reason)

    @app.callback(Output("su-download", "data"), Input("su-export", "n_clicks"), State("su-query", "value"),
                  prevent_initial_call=True)
    def _export(_clicks, text):
        return export(ctx, text)
