"""Overview: volume (and where each send was counted), delivery, hard bounces, complaints
against the 0.1 % and 0.3 % lines, DMARC alignment, the grade of each provider and the open
alerts — each against the previous period."""
from __future__ import annotations

from dash import Input, Output, html

from dashboard import charts, data
from dashboard import components as ui
from dashboard.filters import label

NAME, PATH, TITLE = "overview", "/", "Overview"
COMPLAINT_LINES = [(0.001, "0.1 %", "#b7791f"), (0.003, "0.3 %", "#c53030")]


def layout(f, ctx, search=None):
    return [html.Div(id="ov-notes"), html.Div(id="ov-kpis", style={"display": "flex", "flexWrap": "wrap"}),
            ui.grid(ui.graph("ov-volume"), ui.graph("ov-rates"), ui.graph("ov-complaints"), ui.graph("ov-dmarc"),
                    ui.graph("ov-sources")),
            ui.grid(ui.section("Reputation by provider", html.Div(id="ov-grades")),
                    ui.section("Open alerts", html.Div(id="ov-alerts")))]


def update(ctx, search):
    f = ctx.filters(search)
    prev = f.previous()
    with ctx.sessions() as session:
        frame = data.daily(session, f, start=prev.start)
        grades = data.latest_scores(session, "provider", f.start, f.end)
        open_alerts = data.alerts(session, "open", limit=10)
        n_open = data.open_alert_count(session)
        by_source = data.sends_by_source(session, f.start, f.end)
    now_frame, before = frame.loc[frame.index >= f.start], frame.loc[frame.index < f.start]
    k, kp = data.kpis(now_frame), data.kpis(before)
    has_before = bool(before.to_numpy().sum()) if len(before.columns) else False

    def card(label, key, rate, good=None):
        value = ui.pct(k[key]) if rate else ui.number(k[key])
        delta = ui.change(k[key], kp[key] if has_before else None, rate)
        colour = "#222"
        if good is not None and k[key] is not None:
            colour = "#1b7f3b" if good(k[key]) else "#c53030"
        return ui.kpi(label, value, delta, colour)

    cards = [card("Sent", "sent", False), card("Delivery rate", "delivery_rate", True, lambda v: v >= 0.95),
             card("Hard-bounce rate", "hard_bounce_rate", True, lambda v: v < 0.02),
             card("Complaint rate", "complaint_rate", True, lambda v: v < 0.001),
             card("DMARC aligned", "dmarc_aligned_rate", True, lambda v: v >= 0.98),
             ui.kpi("Open alerts", str(n_open), "now", "#c53030" if n_open else "#1b7f3b")]
    # today is still being counted: its points are drawn apart (dotted), not as a fall
    today = ctx.today()
    partial = today if f.start <= today <= f.end else None
    sent = data.col(now_frame, "sent")
    volume = charts.lines(now_frame.assign(sent=sent, bounced=data.col(now_frame, "bounced"),
                                           complaints=data.col(now_frame, "complaints"))[["sent", "bounced", "complaints"]],
                          "Volume per day", partial=partial)
    rates = ((sent - data.col(now_frame, "bounced")) / sent.where(sent > 0)).to_frame("delivery rate")
    rates["hard-bounce rate"] = data.col(now_frame, "hard") / sent.where(sent > 0)
    # a hard-bounce rate of a few percent is flat on delivery's 0-100 % scale: its own axis
    rate_fig = charts.lines(rates, "Delivery and hard-bounce rate", percent=True, partial=partial,
                            right=["hard-bounce rate"])
    complaint = data.complaint_rates(now_frame).to_frame("complaint rate")
    complaint_fig = charts.with_lines(charts.lines(complaint, "Complaint rate", percent=True, partial=partial),
                                      COMPLAINT_LINES)
    dm = data.col(now_frame, "dmarc.messages")
    dmarc = (data.col(now_frame, "dmarc.aligned") / dm.where(dm > 0)).to_frame("DKIM aligned")
    dmarc["DMARC pass"] = data.col(now_frame, "dmarc.pass") / dm.where(dm > 0)
    dmarc_fig = charts.lines(dmarc, "DMARC aligned and pass rate", percent=True)
    sources_fig = charts.stacked(by_source, "Sends per day by where they were counted (all mail)")
    grade_rows = [{"provider": label(s.key), "day": s.day.isoformat(), "score": round(s.score, 1),
                   "grade": s.grade} for s in grades]
    grade_table = ui.table("ov-grade-table", grade_rows, ["provider", "score", "grade", "day"],
                           style_data_conditional=[{"if": {"filter_query": f"{{grade}} = {g}", "column_id": "grade"},
                                                    "color": c, "fontWeight": "bold"}
                                                   for g, c in ui.GRADE_COLOURS.items()]) \
        if grade_rows else html.P("No scores in this range.")
    alert_rows = [{"severity": a.severity, "rule": a.rule, "entity": ui.entity_label(a.dimension, a.key),
                   "message": a.message, "since": a.opened_at.strftime("%Y-%m-%d %H:%M")} for a in open_alerts]
    alert_table = ui.table("ov-alert-table", alert_rows) if alert_rows else html.P("No open alerts.")
    notes = ui.ignored_note(f.ignored(), f.entity())
    return notes, cards, volume, rate_fig, complaint_fig, dmarc_fig, sources_fig, grade_table, alert_table


def register(app, ctx):
    @app.callback(Output("ov-notes", "children"), Output("ov-kpis", "children"), Output("ov-volume", "figure"),
                  Output("ov-rates", "figure"), Output("ov-complaints", "figure"), Output("ov-dmarc", "figure"),
                  Output("ov-sources", "figure"),
                  Output("ov-grades", "children"), Output("ov-alerts", "children"), Input("url", "search"))
    def _update(search):
        return update(ctx, search)
