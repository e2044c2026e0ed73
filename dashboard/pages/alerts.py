"""Alerts and jobs: the open and recent alerts; each scheduled job's last run, duration and error."""
from __future__ import annotations

from dash import Input, Output, html

from dashboard import data
from dashboard import components as ui

NAME, PATH, TITLE = "alerts", "/alerts", "Alerts & jobs"
SEVERITY_COLOURS = {"critical": "#c53030", "warning": "#b7791f", "info": "#1a4f8b"}


def _rows(alerts):
    return [{"id": a.id, "severity": a.severity, "status": a.status, "rule": a.rule,
             "entity": ui.entity_label(a.dimension, a.key), "message": a.message,
             "opened": a.opened_at.strftime("%Y-%m-%d %H:%M"), "last seen": a.last_seen_at.strftime("%Y-%m-%d %H:%M"),
             "seen": a.times_seen,
             "resolved": a.resolved_at.strftime("%Y-%m-%d %H:%M") if a.resolved_at else ""} for a in alerts]


def layout(f, ctx, search=None):
    return [ui.section("Open alerts", html.Div(id="al-open")), ui.section("Recent alerts", html.Div(id="al-recent")),
            ui.section("Scheduled jobs", html.Div(id="al-jobs"))]


def update(ctx, search):
    with ctx.sessions() as session:
        open_ = data.alerts(session, "open", limit=200)
        recent = data.alerts(session, None, limit=50)
        jobs = data.job_runs(session)
    style = [{"if": {"filter_query": f"{{severity}} = {s}", "column_id": "severity"}, "color": c, "fontWeight": "bold"}
             for s, c in SEVERITY_COLOURS.items()]
    jobs_style = [{"if": {"filter_query": "{error} != ''"}, "backgroundColor": "#fde8e8"}]
    return (ui.table("al-open-table", _rows(open_), style_data_conditional=style) if open_ else html.P("No open alerts."),
            ui.table("al-recent-table", _rows(recent), style_data_conditional=style) if recent else html.P("No alerts yet."),
            ui.table("al-jobs-table", jobs, page_size=20, style_data_conditional=jobs_style))


def register(app, ctx):
    @app.callback(Output("al-open", "children"), Output("al-recent", "children"), Output("al-jobs", "children"),
                  Input("url", "search"))
    def _update(search):
        return update(ctx, search)
