"""Providers: Google Postmaster Tools' and Microsoft SNDS's figures next to postwatch's own, per
day — Gmail's user-reported spam rate beside our complaint rate, each IP's SNDS colour beside
our block rate, Google's compliance status beside our authentication checks — each column
saying where it comes from (analysis/provider_view.py)."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
from dash import Input, Output, html

from analysis.config import AlertsConfig
from analysis.provider_view import SOURCES, compliance_rows, snds_rows, spam_rates
from dashboard import charts
from dashboard import components as ui

NAME, PATH, TITLE = "providers", "/providers", "Providers"
COLOURS = {"GREEN": "#1b7f3b", "YELLOW": "#b7791f", "RED": "#c53030"}


def layout(f, ctx, search=None):
    return [ui.grid(ui.graph("pv-spam")),
            ui.section("Gmail (Google Postmaster Tools) and postwatch, per day", html.Div(id="pv-gmail")),
            ui.section("Microsoft SNDS and postwatch, per IP and day", html.Div(id="pv-snds")),
            ui.section("Google's compliance status and postwatch's own checks", html.Div(id="pv-compliance")),
            ui.section("Where each number comes from", html.Ul([html.Li(f"{k.replace('_', ' ')}: {v}")
                                                                 for k, v in SOURCES.items()]))]


def _gmail_rows(rows):
    return [{"day": r["day"].isoformat(), "domain": r["domain"], "gmail_spam_rate": ui.pct(r["gmail_spam_rate"], 3),
             "our_complaint_rate": ui.pct(r["our_complaint_rate"], 3),
             "our_complaints": f"{r['our_complaints']} of {r['our_base']} ({r['our_basis']})",
             "our_rate_at_google": ui.pct(r["our_google_complaint_rate"], 3),
             "gmail_spf": ui.pct(r["gmail_spf"], 1), "gmail_dkim": ui.pct(r["gmail_dkim"], 1),
             "gmail_dmarc": ui.pct(r["gmail_dmarc"], 1), "gmail_tls_inbound": ui.pct(r["gmail_tls_inbound"], 1),
             "gmail_delivery_errors": ui.pct(r["gmail_delivery_errors"], 2)} for r in rows]


def _snds_rows(rows):
    return [{"day": r["day"].isoformat(), "ip": r["ip"], "snds_colour": r["snds_colour"],
             "snds_complaint_rate": r["snds_complaint_rate_text"] or "—", "snds_trap_hits": r["snds_trap_hits"],
             "snds_recipients": r["snds_recipients"],
             "snds_blocked": ("yes: " + (r["snds_block_details"] or "")) if r["snds_blocked"] else "no",
             "our_block_rate": ui.pct(r["our_block_rate"], 2), "our_blocks": f"{r['our_blocks']} of {r['our_sent']} sent"}
            for r in rows]


def _compliance_rows(rows):
    return [{"domain": r["domain"], "requirement": r["requirement"].replace("_", " "),
             "google_state": r["google_state"] + (f" (was {r['previous_state']})" if r["previous_state"] else ""),
             "google_reason": r["google_reason"] or "", "read_on": r["read_on"].isoformat(),
             "our_checks": ", ".join(f"{c['check']} {c['status']}" for c in r["our_checks"]) or (r["note"] or "no result yet")}
            for r in rows]


def update(ctx, search):
    f = ctx.filters(search)
    with ctx.sessions() as session:
        gmail = spam_rates(session, f.start, f.end)
        ips = snds_rows(session, f.start, f.end)
        compliance = compliance_rows(session, f.end)
    if gmail:
        frame = pd.DataFrame(index=[f.start + timedelta(days=i) for i in range(f.days)])
        for domain in sorted({r["domain"] for r in gmail}):
            by_day = {r["day"]: r for r in gmail if r["domain"] == domain}
            frame[f"Gmail {domain}"] = [by_day.get(d, {}).get("gmail_spam_rate") for d in frame.index]
            frame[f"ours {domain}"] = [by_day.get(d, {}).get("our_complaint_rate") for d in frame.index]
        cfg = getattr(ctx.settings, "alerts", None) or AlertsConfig()
        fig = charts.with_lines(charts.lines(frame * 100, "Gmail's user-reported spam rate and our complaint rate (%)"),
                                [(cfg.gmail_spam_rate_warning * 100, "warning", "#b7791f"),
                                 (cfg.gmail_spam_rate_critical * 100, "critical", "#c53030")])
    else:
        fig = charts.empty("Gmail's user-reported spam rate and our complaint rate",
                           "No Postmaster Tools figures in this range (postwatch providers import / fetch)")
    colour_style = [{"if": {"filter_query": f"{{snds_colour}} = {c}", "column_id": "snds_colour"}, "color": v,
                     "fontWeight": "bold"} for c, v in COLOURS.items()]
    work_style = [{"if": {"filter_query": "{google_state} contains 'needs_work'", "column_id": "google_state"},
                   "color": "#c53030", "fontWeight": "bold"}]
    return (fig,
            ui.table("pv-gmail-table", _gmail_rows(gmail)) if gmail else html.P("No Postmaster Tools figures in this range."),
            ui.table("pv-snds-table", _snds_rows(ips), style_data_conditional=colour_style) if ips
            else html.P("No SNDS data in this range."),
            ui.table("pv-compliance-table", _compliance_rows(compliance), style_data_conditional=work_style)
            if compliance else html.P("No compliance status read yet."))


def register(app, ctx):
    @app.callback(Output("pv-spam", "figure"), Output("pv-gmail", "children"), Output("pv-snds", "children"),
                  Output("pv-compliance", "children"), Input("url", "search"))
    def _update(search):
        return update(ctx, search)
