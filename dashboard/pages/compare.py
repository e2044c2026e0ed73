"""Compare: two groups of sends (IPs, pools, campaigns, tags, ...) side by side, each rate
with its Wilson 95 % interval and the two-proportion test between them."""
from __future__ import annotations

from dash import Input, Output, State, dcc, html
from sqlalchemy import select

from dashboard import charts, data
from dashboard import components as ui
from dashboard import filters as flt

NAME, PATH, TITLE = "compare", "/compare", "Compare"
BY = ("sending_ip", "campaign", "sending_domain", "provider", "pool", "tag", "dkim_selector")


def _values(search, name) -> list[str]:
    return [v for v in (flt.param(search, name) or "").split(",") if v]


def layout(f, ctx, search=None):
    # the groups come from the URL with their choices already there: a dropdown drops a value
    # that is not among its options
    by = flt.param(search, "by")
    by = by if by in BY else "sending_ip"
    a, b = _values(search, "a"), _values(search, "b")
    found = options(ctx, search, by)

    def pick(id_, values):
        return dcc.Dropdown(id=id_, multi=True, value=values, options=choices(found, values),
                            style={"minWidth": "280px"})
    row = {"display": "flex", "gap": "6px", "alignItems": "center"}
    return [ui.section("Groups", html.Div([
        html.Div(["by ", dcc.Dropdown(id="cmp-by", options=list(BY), value=by, clearable=False,
                                      style={"width": "180px"})], style=row),
        html.Div(["A ", pick("cmp-a", a)], style=row), html.Div(["B ", pick("cmp-b", b)], style=row)],
        style={"display": "flex", "gap": "18px", "flexWrap": "wrap"})),
        html.Div(id="cmp-notes"), ui.graph("cmp-figure"), ui.section("Rates", html.Div(id="cmp-table"))]


def options(ctx, search, by):
    """The values a group can take: rollup keys ('' as flt.UNKNOWN), or send-log values."""
    f = ctx.filters(search)
    with ctx.sessions() as session:
        if by in data.ROLLUP_COMPARE:
            return [k or flt.UNKNOWN for k in data.keys(session, by, f.start, f.end)]
        from store.volume import SendLog

        column = getattr(SendLog, by)
        return [v for v in session.scalars(select(column).where(
            SendLog.sent_at >= data.day_start(f.start)).distinct().order_by(column).limit(500)) if v]


def choices(found, chosen):
    """Dropdown options: the values found and those already chosen, the unattributed as "unknown"."""
    return [{"label": flt.label(v), "value": v} for v in sorted(set(found) | set(chosen or ()))]


def update(ctx, search, by, a, b):
    f = ctx.filters(search)
    a, b = tuple(a or ()), tuple(b or ())
    if not a or not b:
        return (html.P("Pick the values of group A and of group B."), charts.empty("A/B comparison", "Pick two groups"),
                html.Div())
    with ctx.sessions() as session:
        result = data.compare_groups(session, by, a, b, f)
    traces = []
    for side, name in (("a", "A: " + ", ".join(map(flt.label, a))), ("b", "B: " + ", ".join(map(flt.label, b)))):
        rates = result["rates"]
        traces.append({"x": [r.metric for r in rates], "y": [getattr(r, side)[2] for r in rates], "name": name[:60],
                       "error_y": {"type": "data", "symmetric": False,
                                   "array": [getattr(r, side)[4] - getattr(r, side)[2] for r in rates],
                                   "arrayminus": [getattr(r, side)[2] - getattr(r, side)[3] for r in rates]}})
    fig = charts.grouped_bars(traces, "Rates with their 95 % intervals", percent=True)
    rows = []
    for r in result["rates"]:
        d = r.as_dict()
        rows.append({"rate": r.metric,
                     "A": f"{ui.pct(d['a']['rate'], 3)} ({d['a']['count']:,}/{d['a']['n']:,})",
                     "A 95% CI": f"{ui.pct(d['a']['ci95'][0], 3)} – {ui.pct(d['a']['ci95'][1], 3)}",
                     "B": f"{ui.pct(d['b']['rate'], 3)} ({d['b']['count']:,}/{d['b']['n']:,})",
                     "B 95% CI": f"{ui.pct(d['b']['ci95'][0], 3)} – {ui.pct(d['b']['ci95'][1], 3)}",
                     "p-value": f"{d['p_value']:.4f}", "significant": "yes" if d["significant"] else "no"})
    source = ("from the rollups of the range" if by in data.ROLLUP_COMPARE
              else "from the send log since the range's start")
    return html.P(f"Groups by {by}, {source}."), fig, ui.table("cmp-rates-table", rows)


def to_search(ctx, search, by, a, b):
    from urllib.parse import parse_qs, urlencode

    params = {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items() if k not in ("by", "a", "b")}
    params.update({"by": by or "sending_ip", "a": ",".join(a or ()), "b": ",".join(b or ())})
    return "?" + urlencode({k: v for k, v in params.items() if v})


def register(app, ctx):
    @app.callback(Output("cmp-a", "options"), Output("cmp-b", "options"), Input("url", "search"),
                  Input("cmp-by", "value"), State("cmp-a", "value"), State("cmp-b", "value"),
                  prevent_initial_call=True)
    def _options(search, by, a, b):
        found = options(ctx, search, by)
        return choices(found, a), choices(found, b)

    @app.callback(Output("cmp-notes", "children"), Output("cmp-figure", "figure"), Output("cmp-table", "children"),
                  Input("url", "search"), Input("cmp-by", "value"), Input("cmp-a", "value"), Input("cmp-b", "value"))
    def _update(search, by, a, b):
        return update(ctx, search, by, a, b)

    @app.callback(Output("url", "search", allow_duplicate=True), Input("cmp-by", "value"), Input("cmp-a", "value"),
                  Input("cmp-b", "value"), State("url", "search"), prevent_initial_call=True)
    def _bookmark(by, a, b, search):
        from dash import no_update

        new = to_search(ctx, search, by, a, b)
        return no_update if new == search else new
