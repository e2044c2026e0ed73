"""Bounces: trend by category and reason, by provider, the deferrals (delays: no bounce) by
category, the top diagnostic texts, and the table of events (paged on the server) with
drill-down to the raw message."""
from __future__ import annotations

import math

from dash import Input, Output, State, dash_table, html

from dashboard import charts, data
from dashboard import components as ui

NAME, PATH, TITLE = "bounces", "/bounces", "Bounces"
PAGE_SIZE = 25


def layout(f, ctx, search=None):
    events = dash_table.DataTable(
        id="bo-events", columns=[{"name": c.replace("_", " "), "id": c} for c in data.EVENT_COLUMNS],
        data=[], page_action="custom", page_current=0, page_size=PAGE_SIZE, page_count=1,
        style_table={"overflowX": "auto"},
        style_cell={"fontFamily": "sans-serif", "fontSize": "12px", "textAlign": "left", "maxWidth": "360px",
                    "overflow": "hidden", "textOverflow": "ellipsis", "whiteSpace": "nowrap", "cursor": "pointer"},
        style_header={"fontWeight": "bold", "background": "#f3f3f3"})
    return [html.Div(id="bo-notes"),
            ui.grid(ui.graph("bo-category"), ui.graph("bo-reason"), ui.graph("bo-provider"),
                    ui.graph("bo-deferred"), ui.section("Top diagnostic texts", html.Div(id="bo-diagnostics"))),
            ui.section("Bounce events (click a row for the raw message)", html.Div(id="bo-count"), events),
            ui.section("Raw message", html.Div(id="bo-raw", children=html.P("Click an event above.")))]


def update(ctx, search):
    f = ctx.filters(search)
    dimension, key = f.entity()
    with ctx.sessions() as session:
        frame = data.daily(session, f)
        by_provider = data.daily_by_key(session, "provider", "bounced", f.start, f.end)
        diagnostics, sampled = data.top_diagnostics(session, f)
    category = charts.stacked(data.prefixed(frame, "bounced."), "Bounces per day by category")
    reason = charts.stacked(data.prefixed(frame, "reason.").drop(columns=["delivered", "vacation"], errors="ignore"),
                            "Bounces per day by reason")
    provider = charts.stacked(by_provider, "Bounces per day by provider (all mail)")
    deferred = charts.stacked(data.prefixed(frame, "deferred."),
                              "Deferrals per day by category (delays, not bounces)")
    total = data.bounce_total(frame)
    diag = (ui.table("bo-diag-table", diagnostics, ["count", "reason", "diagnostic"], page_size=10)
            if diagnostics else html.P("No bounces in this range."))
    sample_note = (html.Small(f"Among the newest {sampled:,} bounces of the range.")
                   if sampled >= data.DIAGNOSTIC_SAMPLE else html.Small(f"{sampled:,} bounces."))
    page_count = max(1, math.ceil(total / PAGE_SIZE))
    notes = ui.ignored_note(f.ignored(), (dimension, key))
    return (notes, category, reason, provider, deferred, [diag, sample_note], page_count,
            f"{total:,} events in the range (from the rollups of {ui.entity_label(dimension, key)})")


def page(ctx, search, page_current, page_size=PAGE_SIZE):
    """One page of the events table: the server reads only that page, through the index."""
    f = ctx.filters(search)
    with ctx.sessions() as session:
        return data.bounce_page(session, f, page_current or 0, page_size or PAGE_SIZE)


def raw(ctx, rows, active_cell):
    """The raw message behind the clicked event: headers and the DSN part."""
    if not active_cell or not rows or active_cell.get("row") is None or active_cell["row"] >= len(rows):
        return html.P("Click an event above.")
    event_id = rows[active_cell["row"]]["id"]
    with ctx.sessions() as session:
        found = data.raw_message(session, event_id)
    if found is None:
        return html.P(f"Bounce event {event_id} is no longer in the store.")
    if not found["stored"]:
        return html.P(f"The raw bytes of message {found['message_id']} are not kept (erased or moved).")
    pre = {"whiteSpace": "pre-wrap", "fontSize": "12px", "background": "#f6f6f6", "padding": "8px",
           "maxHeight": "360px", "overflow": "auto"}
    return [html.P(f"Event {found['event_id']} of message {found['message_id']} ({found['kind']}, received "
                   f"{found['received_at']}); rule: {found['rule'] or '—'}"),
            html.H4("Headers"), html.Pre(found["headers"], style=pre, id="bo-raw-headers"),
            html.H4("Delivery status"), html.Pre(found["dsn"] or "(no message/delivery-status part)", style=pre,
                                                 id="bo-raw-dsn")]


def register(app, ctx):
    @app.callback(Output("bo-notes", "children"), Output("bo-category", "figure"), Output("bo-reason", "figure"),
                  Output("bo-provider", "figure"), Output("bo-deferred", "figure"),
                  Output("bo-diagnostics", "children"),
                  Output("bo-events", "page_count"), Output("bo-count", "children"), Input("url", "search"))
    def _update(search):
        return update(ctx, search)

    @app.callback(Output("bo-events", "data"), Input("url", "search"), Input("bo-events", "page_current"),
                  Input("bo-events", "page_size"))
    def _page(search, page_current, page_size):
        return page(ctx, search, page_current, page_size)

    @app.callback(Output("bo-raw", "children"), Input("bo-events", "active_cell"), State("bo-events", "data"),
                  prevent_initial_call=True)
    def _raw(active_cell, rows):
        return raw(ctx, rows, active_cell)
