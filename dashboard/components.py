"""Building blocks of the pages' layouts: figure cards, key-figure cards, plain tables."""
from __future__ import annotations

from typing import Any

from dash import dash_table, dcc, html

from dashboard.filters import label

CARD = {"border": "1px solid #ddd", "borderRadius": "6px", "padding": "10px", "margin": "6px",
        "background": "white"}
GRID = {"display": "grid", "gridTemplateColumns": "repeat(auto-fit, minmax(460px, 1fr))", "gap": "4px"}
GRADE_COLOURS = {"good": "#1b7f3b", "watch": "#b7791f", "critical": "#c53030"}


def graph(id_: str) -> html.Div:
    return html.Div(dcc.Graph(id=id_, config={"displaylogo": False}), style=CARD)


def grid(*children: Any) -> html.Div:
    return html.Div(list(children), style=GRID)


def section(title: str, *children: Any) -> html.Div:
    return html.Div([html.H3(title, style={"margin": "4px 0"}), *children], style=CARD)


def pct(value: float | None, digits: int = 2) -> str:
    """A rate as a percentage for a table or a card: 0.973 -> "97.30 %" ("97.3 %" with digits=1)."""
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def points(value: float | None) -> str:
    """Score points, one decimal: 2.3456 -> "2.3"."""
    return "" if value is None else f"{value:.1f}"


def number(value: float | int | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def change(now: float | None, before: float | None, rate: bool) -> str:
    """The change against the previous period: percentage points for rates, percent for counts."""
    if now is None or before is None:
        return "no previous data"
    if rate:
        return f"{(now - before) * 100:+.2f} pp vs previous period"
    if not before:
        return "new in this period" if now else "unchanged"
    return f"{(now - before) / before * 100:+.1f}% vs previous period"


def kpi(label: str, value: str, delta: str, colour: str = "#222") -> html.Div:
    return html.Div([html.Div(label, style={"fontSize": "12px", "color": "#666"}),
                     html.Div(value, style={"fontSize": "24px", "fontWeight": "bold", "color": colour}),
                     html.Div(delta, style={"fontSize": "11px", "color": "#666"})],
                    style={**CARD, "minWidth": "150px", "flex": "1"}, className="kpi")


def table(id_: str, rows: list[dict[str, Any]], columns: list[str] | None = None, page_size: int = 15,
          **kwargs: Any) -> dash_table.DataTable:
    columns = columns or (list(rows[0]) if rows else [])
    return dash_table.DataTable(
        id=id_, data=rows, columns=[{"name": c.replace("_", " "), "id": c} for c in columns],
        page_size=page_size, style_table={"overflowX": "auto"},
        style_cell={"fontFamily": "sans-serif", "fontSize": "13px", "textAlign": "left", "maxWidth": "420px",
                    "overflow": "hidden", "textOverflow": "ellipsis", "whiteSpace": "nowrap"},
        style_header={"fontWeight": "bold", "background": "#f3f3f3"}, **kwargs)


def note(text: str) -> html.Div:
    return html.Div(text, style={"color": "#8a6d00", "background": "#fff8e1", "padding": "6px 10px",
                                 "margin": "6px", "borderRadius": "4px", "fontSize": "13px"}, className="note")


def ignored_note(ignored: list[str], entity: tuple[str, str]) -> list[html.Div]:
    if not ignored:
        return []
    return [note(f"Charts read the rollups of one entity at a time: showing {entity_label(*entity)}; "
                 f"the {' and '.join(ignored)} filter applies to the tables of events only.")]


def entity_label(dimension: str, key: str | None) -> str:
    """'provider google', 'sending_ip unknown' (the key '' is what is not attributed), 'all mail'."""
    return "all mail" if dimension == "all" else f"{dimension} {label(key)}"
