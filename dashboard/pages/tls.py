"""TLS: successful against failed sessions per day, failure types by receiving MX."""
from __future__ import annotations

from dash import Input, Output, html

from dashboard import charts, data
from dashboard import components as ui

NAME, PATH, TITLE = "tls", "/tls", "TLS"


def layout(f, ctx, search=None):
    return [html.Div(id="tl-notes"), ui.grid(ui.graph("tl-sessions"), ui.graph("tl-types")),
            ui.section("Failures by receiving MX", html.Div(id="tl-table"))]


def update(ctx, search):
    f = ctx.filters(search)
    with ctx.sessions() as session:
        frame = data.daily(session, f)
        failures = data.tls_failures(session, f)
    sessions = frame.assign(successful=data.col(frame, "tls.ok"), failed=data.col(frame, "tls.failed"))
    fig = charts.stacked(sessions[["successful", "failed"]], "TLS sessions per day")
    by_type: dict[str, int] = {}
    for row in failures:
        by_type[row["result_type"]] = by_type.get(row["result_type"], 0) + row["failed_sessions"]
    types = charts.bars(list(by_type), list(by_type.values()), "Failed sessions by failure type", horizontal=True)
    table = ui.table("tl-failures-table", failures) if failures else html.P("No TLS failures in this range.")
    return ui.ignored_note(f.ignored(), f.entity()), fig, types, table


def register(app, ctx):
    @app.callback(Output("tl-notes", "children"), Output("tl-sessions", "figure"), Output("tl-types", "figure"),
                  Output("tl-table", "children"), Input("url", "search"))
    def _update(search):
        return update(ctx, search)
