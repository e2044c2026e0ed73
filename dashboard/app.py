"""The Dash app: built on the web server's Flask app, one URL per page, filters in the query string.

`create_dash(server, settings)` is what dashboard/server.py calls. Pages live in
dashboard/pages/: each has PATH, TITLE, `layout(filters, ctx)` and `register(app, ctx)`;
their callbacks call plain functions `update(ctx, search, ...)` that tests call directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlencode

import flask
from dash import Dash, Input, Output, State, dcc, html, no_update
from sqlalchemy.orm import Session, sessionmaker

from dashboard import filters as flt
from dashboard.auth import current_role
from dashboard.pages import (alerts, bounces, compare, complaints, dmarc, domains, engagement, overview, providers,
                             reputation, suppressions, tls)
from store.clock import Clock, utcnow

PAGES = (overview, bounces, complaints, dmarc, tls, reputation, providers, engagement, suppressions, compare, domains,
         alerts)


@dataclass(frozen=True)
class DashContext:
    """What every callback needs: the store, the configuration and the clock."""

    sessions: sessionmaker[Session]
    settings: Any
    clock: Clock

    def today(self) -> date:
        return self.clock().date()

    def filters(self, search: str | None) -> flt.Filters:
        return flt.parse(search, self.today())


def page_for(pathname: str | None):
    path = (pathname or "/").rstrip("/") or "/"
    for page in PAGES:
        if page.PATH == path:
            return page
    return None


def _filter_bar(f: flt.Filters, options: tuple[Any, Any, Any]) -> html.Div:
    """The filter bar, with its choices filled in: its options callback fires on URL changes
    only, not when the bar first appears."""
    domains, providers, campaigns = options
    style = {"minWidth": "180px", "marginRight": "8px"}
    return html.Div([
        dcc.DatePickerRange(id="f-dates", start_date=f.start.isoformat(), end_date=f.end.isoformat(),
                            display_format="YYYY-MM-DD", style={"marginRight": "8px"}),
        dcc.Dropdown(id="f-domain", value=f.domain, placeholder="all sending domains", style=style,
                     options=domains),
        dcc.Dropdown(id="f-provider", value=f.provider, placeholder="all providers", style=style,
                     options=providers),
        dcc.Dropdown(id="f-campaign", value=f.campaign, placeholder="all campaigns", style=style,
                     options=campaigns),
    ], style={"display": "flex", "alignItems": "center", "flexWrap": "wrap", "padding": "6px 10px",
              "background": "#fafafa", "borderBottom": "1px solid #ddd"}, id="filter-bar-inner")


def _nav(pathname: str | None, search: str | None) -> list[Any]:
    current = page_for(pathname)
    links = []
    for page in PAGES:
        style = {"marginRight": "14px", "textDecoration": "none",
                 "fontWeight": "bold" if page is current else "normal", "color": "#1a4f8b"}
        links.append(dcc.Link(page.TITLE, href=page.PATH + (search or ""), style=style, id=f"nav-{page.NAME}"))
    return links


def shell() -> html.Div:
    return html.Div([
        dcc.Location(id="url", refresh=False),
        html.Div([html.Span("postwatch", style={"fontWeight": "bold", "fontSize": "18px", "marginRight": "24px"}),
                  html.Span(id="nav"), html.Span(id="who", style={"float": "right", "color": "#666"})],
                 style={"padding": "10px", "background": "#eef3f8", "borderBottom": "1px solid #ccd"}),
        html.Div(id="filter-bar"),
        dcc.Loading(html.Div(id="page"), delay_show=400),
    ], style={"fontFamily": "sans-serif", "background": "#f7f7f7", "minHeight": "100vh"})


def route(ctx: DashContext, pathname: str | None, search: str | None) -> tuple[Any, Any, str]:
    """The filter bar and the page for a URL."""
    page = page_for(pathname)
    who = ""
    if flask.has_request_context():
        user = flask.session.get("user")
        who = f"{user} ({current_role() or 'no role'})" if user else ""
    if page is None:
        return html.Div(), html.Div([html.H2("Not found"), html.P(f"There is no page at {pathname}."),
                                     dcc.Link("Back to the overview", href="/" + (search or ""))],
                                    style={"padding": "20px"}), who
    f = ctx.filters(search)
    return _filter_bar(f, filter_options(ctx, search)), html.Div(page.layout(f, ctx, search), id=f"page-{page.NAME}", style={"padding": "6px"}), who


def filters_to_search(ctx: DashContext, start: str | None, end: str | None, domain: str | None,
                      provider: str | None, campaign: str | None, search: str | None) -> str:
    """The query string for the filter bar's values, keeping the page's own parameters."""
    f = flt.from_controls(start, end, domain, provider, campaign, ctx.today())
    own = {k: v for k, v in parse_qs((search or "").lstrip("?")).items()
           if k not in ("start", "end", *flt.FIELDS)}
    extra = urlencode([(k, v) for k, values in own.items() for v in values])
    return f.query_string() + ("&" + extra if extra else "")


Options = list[dict[str, str]]


def filter_options(ctx: DashContext, search: str | None) -> tuple[Options, Options, Options]:
    """The choices of the filter bar: the keys with rollups in the range, the mail that is not
    attributed (key '') as "unknown"."""
    from dashboard import data

    f = ctx.filters(search)
    with ctx.sessions() as session:
        out = []
        for dimension, chosen in (("sending_domain", f.domain), ("provider", f.provider), ("campaign", f.campaign)):
            found = data.keys(session, dimension, f.start, f.end)
            if chosen and flt.key_of(chosen) not in found:
                found.append(flt.key_of(chosen))
            out.append(flt.choices(found))
    return out[0], out[1], out[2]


def create_dash(server: flask.Flask, settings: Any, *, clock: Clock = utcnow,
                sessions: sessionmaker[Session] | None = None) -> Dash:
    """The dashboard, on `server`, reading the store that `settings.database` names."""
    if sessions is None:
        from store.engine import session_factory

        sessions = session_factory(settings.database)
    ctx = DashContext(sessions, settings, clock)
    app = Dash(__name__, server=server, url_base_pathname="/", suppress_callback_exceptions=True,
               title="postwatch", update_title=None, assets_folder="assets", include_assets_files=False)
    app.layout = shell()

    @app.callback(Output("filter-bar", "children"), Output("page", "children"), Output("who", "children"),
                  Input("url", "pathname"), State("url", "search"))
    def _route(pathname, search):
        return route(ctx, pathname, search)

    @app.callback(Output("nav", "children"), Input("url", "pathname"), Input("url", "search"))
    def _nav_links(pathname, search):
        return _nav(pathname, search)

    @app.callback(Output("url", "search"),
                  Input("f-dates", "start_date"), Input("f-dates", "end_date"), Input("f-domain", "value"),
                  Input("f-provider", "value"), Input("f-campaign", "value"), State("url", "search"),
                  prevent_initial_call=True)
    def _filters(start, end, domain, provider, campaign, search):
        new = filters_to_search(ctx, start, end, domain, provider, campaign, search)
        return no_update if new == search else new

    @app.callback(Output("f-domain", "options"), Output("f-provider", "options"), Output("f-campaign", "options"),
                  Input("url", "search"))
    def _options(search):
        return filter_options(ctx, search)

    for page in PAGES:
        page.register(app, ctx)
    app.postwatch = ctx  # tests and the benchmark reach the context through the app
    return app
