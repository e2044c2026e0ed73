"""Domains: each sending domain's authentication posture (SPF, DKIM, DMARC, MTA-STS, TLS-RPT,
PTR of the sending IPs) and the providers' bulk-sender checklist."""
from __future__ import annotations

from dash import Input, Output, html

from dashboard import data
from dashboard import components as ui
from dashboard.filters import key_of, label

NAME, PATH, TITLE = "domains", "/domains", "Domains"
MARK = {True: "✔ yes", False: "✘ no", None: "— not known"}
STATUS_COLOURS = {"ok": "#1b7f3b", "warning": "#b7791f", "error": "#c53030", "missing": "#c53030",
                  "unknown": "#6b7280"}  # unknown: the DNS did not answer; the summary says why


def layout(f, ctx, search=None):
    return [ui.section("Bulk-sender checklist (Gmail, Yahoo, Microsoft)", html.Div(id="do-checklist")),
            ui.section("Authentication posture", html.Div(id="do-posture"))]


def _configured(ctx) -> list[str]:
    return [d.strip().lower().rstrip(".") for d in
            getattr(getattr(ctx.settings, "domains", None), "sending_domains", ()) or () if d.strip()]


def _domains(ctx, session, f) -> list[str]:
    """The configured sending domains, then those seen in the range ('' — not attributed — too)."""
    configured = _configured(ctx)
    seen = data.keys(session, "sending_domain", f.start, f.end)
    out = configured + [d for d in seen if d not in configured]
    return [key_of(f.domain)] if f.domain else out


def update(ctx, search):
    f = ctx.filters(search)
    complaint_line = getattr(getattr(ctx.settings, "scores", None), "complaint_bad", 0.003)
    # postwatch's sender adds List-Unsubscribe-Post (RFC 8058) to every message it sends, with a
    # link the web server honours only when [web] secret is set
    one_click = bool(getattr(getattr(ctx.settings, "web", None), "secret", ""))
    with ctx.sessions() as session:
        posture = data.posture(session)
        domains = _domains(ctx, session, f)
        lists = [data.checklist(session, f, d, posture.get(d, []), one_click, complaint_line) for d in domains]
    rows = [{"domain": label(c.domain), "authenticated (SPF, DKIM, DMARC)": MARK[c.authenticated],
             "aligned": f"{MARK[c.aligned]} ({ui.pct(c.aligned_rate)})",
             "one-click unsubscribe": MARK[c.one_click],
             "complaints under 0.3 %": f"{MARK[c.complaint_ok]} ({ui.pct(c.complaint_rate, 3)})"} for c in lists]
    checklist = ui.table("do-checklist-table", rows) if rows else html.P(
        "No sending domain yet: set [domains] sending_domains, or send some mail.")
    posture_rows = []
    ips = [ip.strip() for ip in getattr(getattr(ctx.settings, "domains", None), "sending_ips", ()) or ()]
    for subject in sorted(posture):
        if f.domain and subject != key_of(f.domain) and subject not in ips:
            continue
        for check in posture[subject]:
            posture_rows.append({"subject": subject, "check": check.check, "status": check.status,
                                 "summary": check.summary, "since": check.first_seen_at.strftime("%Y-%m-%d"),
                                 "checked": check.checked_at.strftime("%Y-%m-%d %H:%M")})
    table = ui.table("do-posture-table", posture_rows, page_size=30, style_data_conditional=[
        {"if": {"filter_query": f"{{status}} = {s}", "column_id": "status"}, "color": c, "fontWeight": "bold"}
        for s, c in STATUS_COLOURS.items()]) if posture_rows else html.P(_no_posture(ctx, bool(posture)))
    return checklist, table


def _no_posture(ctx, any_check: bool) -> str:
    """Why the posture table is empty: nothing to check, nothing checked yet, or the filter."""
    if not _configured(ctx):
        return "No sending domains are configured ([domains] sending_domains in postwatch.toml)."
    if any_check:
        return "No posture check for this domain (the posture job checks the domains of [domains] sending_domains)."
    return "No posture check has run yet (the posture job checks the DNS of [domains] once a day)."


def register(app, ctx):
    @app.callback(Output("do-checklist", "children"), Output("do-posture", "children"), Input("url", "search"))
    def _update(search):
        return update(ctx, search)
