"""Reputation: the score of each entity over time, and the components that moved it, so a
drop explains itself."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
from dash import Input, Output, dcc, html

from dashboard import charts, data
from dashboard import components as ui
from dashboard.filters import label as key_label

NAME, PATH, TITLE = "reputation", "/reputation", "Reputation"
COMPONENTS = ("complaints", "hard_bounces", "blocks", "dmarc_unaligned", "tls_failures", "blocklists")
DIMENSIONS = ("provider", "sending_ip", "sending_domain", "campaign")


def layout(f, ctx, search=None):
    return [html.Div(["Scores of every ", dcc.RadioItems(id="rep-dim", options=list(DIMENSIONS), value="provider",
                                                          inline=True, style={"display": "inline-block"})],
                     style={"padding": "6px 10px"}),
            ui.grid(ui.graph("rep-scores"), ui.graph("rep-entity"), ui.graph("rep-components")),
            ui.section("Components of the latest day", html.Div(id="rep-table"))]


def update(ctx, search, dimension="provider"):
    f = ctx.filters(search)
    dimension = dimension if dimension in DIMENSIONS else "provider"
    entity_dim, entity_key = f.entity()
    with ctx.sessions() as session:
        many = data.scores(session, dimension, f.start, f.end)
        own = data.scores(session, entity_dim, f.start, f.end, entity_key)
    if many:
        frame = pd.DataFrame([(s.day, key_label(s.key), s.score) for s in many], columns=["day", "key", "score"])
        wide = frame.pivot_table(index="day", columns="key", values="score", aggfunc="last")
        wide = wide.reindex([f.start + timedelta(days=i) for i in range(f.days)])
        wide.columns.name = None
        scores_fig = charts.with_lines(charts.lines(wide, f"Score by {dimension}"), _grade_lines(ctx))
    else:
        scores_fig = charts.empty(f"Score by {dimension}")
    label = ui.entity_label(entity_dim, entity_key)
    if own:
        entity = pd.DataFrame({"score": [s.score for s in own]}, index=[s.day for s in own])
        entity_fig = charts.with_lines(charts.lines(entity, f"Score of {label}"), _grade_lines(ctx))
        # points rounded for reading: the hover shows "2.3", not "2.3456"
        lost = pd.DataFrame([{c: round((s.components.get(c) or {}).get("lost", 0.0), 1) for c in COMPONENTS}
                             for s in own], index=[s.day for s in own])
        components_fig = charts.stacked(lost, f"Points lost per component, {label}")
        last = own[-1]
        rows = []
        for c in COMPONENTS:
            comp = last.components.get(c) or {}
            rows.append({"component": c, "lost": ui.points(comp.get("lost", 0.0)),
                         "weight": ui.points(comp.get("weight")),
                         "rate": ui.pct(comp.get("rate"), 3) if "rate" in comp else ", ".join(comp.get("zones", [])) or "—",
                         "count": comp.get("count", ""), "of": comp.get("total", ""),
                         "good line": ui.pct(comp.get("good"), 2) if comp.get("good") is not None else "",
                         "bad line": ui.pct(comp.get("bad"), 2) if comp.get("bad") is not None else ""})
        caps = "; ".join(f"{c['rule']} (at most {c['cap']})" for c in last.components.get("caps", []))
        table = [html.P(f"{label} on {last.day}: score {last.score:.1f} ({last.grade})"
                        + (f", capped: {caps}" if caps else "")), ui.table("rep-components-table", rows)]
    else:
        entity_fig = charts.empty(f"Score of {label}", "No score in this range (below the minimum volume?)")
        components_fig = charts.empty(f"Points lost per component, {label}")
        table = html.P(f"No score of {label} in this range.")
    return scores_fig, entity_fig, components_fig, table


def _grade_lines(ctx):
    cfg = getattr(ctx.settings, "scores", None)
    good, watch = (cfg.good, cfg.watch) if cfg else (80.0, 50.0)
    return [(good, "good", "#1b7f3b"), (watch, "watch", "#c53030")]


def register(app, ctx):
    @app.callback(Output("rep-scores", "figure"), Output("rep-entity", "figure"), Output("rep-components", "figure"),
                  Output("rep-table", "children"), Input("url", "search"), Input("rep-dim", "value"))
    def _update(search, dimension):
        return update(ctx, search, dimension)
